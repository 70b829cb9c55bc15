/**
 * Everything `npm start` reads from its environment, parsed once. Defaults are the documented
 * local cluster (README): three gateways on 9001-9003, NGINX on 8080, state under the
 * checkout. The test of npm start moves every port and directory so that it can never touch
 * a cluster a developer is running.
 */

import path from "node:path";
import { DEV_JWT_SECRET, DEV_PUBLISH_KEY } from "./dev-defaults.js";

export interface GatewayNodeSpec {
  readonly name: string;
  readonly port: number;
}

export interface StartOptions {
  /** One gateway per port, named node-1, node-2, ... */
  readonly gateways: readonly GatewayNodeSpec[];
  readonly nginxPort: number;
  /** Preferred ports: a taken one is replaced by a free one. */
  readonly pgPort: number;
  readonly redisPort: number;
  readonly prometheusPort: number;
  readonly redisExporterPort: number;
  readonly pgExporterPort: number;
  /** Holds start.json, the record of the running npm start. */
  readonly runDir: string;
  /** Persistent data (Postgres' cluster in <dataDir>/postgres). */
  readonly dataDir: string;
  readonly jwtSecret: string;
  readonly publishKey: string;
  readonly logLevel: string;
  /** Whether npm start publishes its demo forecasts (scripts/lib/demo-forecasts.ts). */
  readonly demoFeed: boolean;
}

type Env = Readonly<Record<string, string | undefined>>;

function port(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  return parsePort(name, raw);
}

function parsePort(name: string, raw: string): number {
  const trimmed = raw.trim();
  const value = Number(trimmed);
  if (!/^\d+$/.test(trimmed) || value < 1 || value > 65535) throw new Error(`${name} must be a port number, got "${raw}"`);
  return value;
}

function gatewayPorts(env: Env): number[] {
  const raw = env.GATEWAY_PORTS;
  if (raw === undefined || raw === "") return [9001, 9002, 9003];
  const ports = raw.split(",").map((part) => parsePort("GATEWAY_PORTS", part));
  if (new Set(ports).size !== ports.length) throw new Error(`GATEWAY_PORTS must not repeat a port, got "${raw}"`);
  return ports;
}

function flag(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === "") return fallback;
  if (raw === "true" || raw === "1") return true;
  if (raw === "false" || raw === "0") return false;
  throw new Error(`${name} must be true or false, got "${env[name]}"`);
}

function directory(env: Env, name: string, fallback: string, root: string): string {
  const raw = env[name];
  return raw === undefined || raw === "" ? fallback : path.resolve(root, raw);
}

export function readStartOptions(env: Env, root: string): StartOptions {
  const gateways = gatewayPorts(env).map((p, i) => ({ name: `node-${i + 1}`, port: p }));
  const nginxPort = port(env, "NGINX_PORT", 8080);
  if (gateways.some((g) => g.port === nginxPort)) throw new Error(`NGINX_PORT ${nginxPort} is also in GATEWAY_PORTS`);
  return {
    gateways,
    nginxPort,
    pgPort: port(env, "PG_PORT", 5432),
    redisPort: port(env, "REDIS_PORT", 6379),
    prometheusPort: port(env, "PROMETHEUS_PORT", 9090),
    redisExporterPort: port(env, "REDIS_EXPORTER_PORT", 9121),
    pgExporterPort: port(env, "PG_EXPORTER_PORT", 9187),
    runDir: directory(env, "START_RUN_DIR", path.join(root, ".run"), root),
    dataDir: directory(env, "START_DATA_DIR", path.join(root, ".data"), root),
    jwtSecret: env.JWT_SECRET ?? DEV_JWT_SECRET,
    publishKey: env.PUBLISH_KEY ?? DEV_PUBLISH_KEY,
    logLevel: env.LOG_LEVEL ?? "info",
    demoFeed: flag(env, "START_DEMO_FEED", true),
  };
}
