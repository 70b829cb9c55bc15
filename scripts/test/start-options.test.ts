/**
 * What npm start reads from its environment: the documented defaults, and clear errors.
 */

import path from "node:path";
import { describe, expect, it } from "vitest";
import { readStartOptions } from "../lib/start-options.js";

const root = "/repo";

describe("readStartOptions", () => {
  it("defaults to the documented local cluster", () => {
    const options = readStartOptions({}, root);
    expect(options.gateways).toEqual([
      { name: "node-1", port: 9001 },
      { name: "node-2", port: 9002 },
      { name: "node-3", port: 9003 },
    ]);
    expect(options).toMatchObject({
      nginxPort: 8080,
      pgPort: 5432,
      redisPort: 6379,
      prometheusPort: 9090,
      redisExporterPort: 9121,
      pgExporterPort: 9187,
      runDir: path.join(root, ".run"),
      dataDir: path.join(root, ".data"),
      demoFeed: true,
    });
  });

  it("turns the demo forecast feed off with START_DEMO_FEED=false, and refuses what is not a flag", () => {
    expect(readStartOptions({ START_DEMO_FEED: "false" }, root).demoFeed).toBe(false);
    expect(readStartOptions({ START_DEMO_FEED: "0" }, root).demoFeed).toBe(false);
    expect(readStartOptions({ START_DEMO_FEED: "true" }, root).demoFeed).toBe(true);
    expect(() => readStartOptions({ START_DEMO_FEED: "off" }, root)).toThrow('START_DEMO_FEED must be true or false, got "off"');
  });

  it("runs one gateway per port in GATEWAY_PORTS and moves every other port and directory", () => {
    const options = readStartOptions(
      {
        GATEWAY_PORTS: "19001, 19002",
        NGINX_PORT: "18080",
        PG_PORT: "15432",
        REDIS_PORT: "16379",
        PROMETHEUS_PORT: "19090",
        REDIS_EXPORTER_PORT: "19121",
        PG_EXPORTER_PORT: "19187",
        START_RUN_DIR: "/tmp/run",
        START_DATA_DIR: "data",
      },
      root,
    );
    expect(options.gateways).toEqual([
      { name: "node-1", port: 19001 },
      { name: "node-2", port: 19002 },
    ]);
    expect(options).toMatchObject({
      nginxPort: 18080,
      pgPort: 15432,
      redisPort: 16379,
      prometheusPort: 19090,
      redisExporterPort: 19121,
      pgExporterPort: 19187,
      runDir: "/tmp/run",
      dataDir: path.join(root, "data"),
    });
  });

  it("refuses what is not a port, a repeated gateway port, and NGINX on a gateway's port", () => {
    expect(() => readStartOptions({ NGINX_PORT: "80a" }, root)).toThrow('NGINX_PORT must be a port number, got "80a"');
    expect(() => readStartOptions({ PG_PORT: "70000" }, root)).toThrow("PG_PORT must be a port number");
    expect(() => readStartOptions({ GATEWAY_PORTS: "9001,,9002" }, root)).toThrow("GATEWAY_PORTS must be a port number");
    expect(() => readStartOptions({ GATEWAY_PORTS: "9001,9001" }, root)).toThrow("GATEWAY_PORTS must not repeat a port");
    expect(() => readStartOptions({ GATEWAY_PORTS: "9001,8080" }, root)).toThrow("NGINX_PORT 8080 is also in GATEWAY_PORTS");
  });
});
