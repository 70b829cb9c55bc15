/**
 * docker-compose.yml is safe by default: production mode, no credentials
 * without the operator's own (compose refuses to start), and published ports
 * on loopback unless BIND_ADDRESS says otherwise. The file's own text is
 * checked everywhere; where `docker-compose` is installed (Debian's v1 here)
 * it also resolves the file as Compose would.
 */

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { repoRoot } from "../../scripts/lib/paths.js";

const composeFile = path.join(repoRoot(), "docker-compose.yml");
const GATEWAYS = ["gateway-1", "gateway-2", "gateway-3"];
/** The only services a host may reach; everything else stays on the compose network. */
const PUBLISHED = ["nginx", "prometheus", "grafana"];
const SECRETS = { JWT_SECRET: "compose-test-secret-0123456789", PUBLISH_KEY: "compose-test-publish-key-0123456789", ROUND_SEED_KEY: "compose-test-round-seed-key-0123456789abcdef" };

interface Service {
  readonly environment?: Readonly<Record<string, string>>;
  readonly ports?: readonly string[];
  readonly volumes?: readonly string[];
}

interface ComposeFile {
  readonly services: Readonly<Record<string, Service>>;
}

function services(text: string): Readonly<Record<string, Service>> {
  return (parse(text, { merge: true }) as ComposeFile).services;
}

describe("docker-compose.yml as written", () => {
  const written = services(readFileSync(composeFile, "utf8"));

  it("mounts every file nginx.conf includes", () => {
    const conf = readFileSync(path.join(repoRoot(), "nginx", "nginx.conf"), "utf8");
    const includes = [...conf.matchAll(/^\s*include\s+([^;\s]+);/gm)].map((match) => match[1] ?? "");
    expect(includes.sort()).toEqual(["limits.conf", "listen.conf", "ops-networks.conf", "upstreams.conf"]);
    const mounted = (written["nginx"]?.volumes ?? []).map((volume) => volume.split(":")[1]);
    for (const file of includes) expect(mounted, file).toContain(`/etc/nginx/${file}`);
  });

  it("runs every gateway in production unless told otherwise", () => {
    for (const name of GATEWAYS) expect(written[name]?.environment?.["GATEWAY_ENV"], name).toBe("${GATEWAY_ENV:-production}");
  });

  it("requires JWT_SECRET, PUBLISH_KEY and ROUND_SEED_KEY, with no default to fall back on", () => {
    for (const name of GATEWAYS) {
      const env = written[name]?.environment ?? {};
      expect(env["JWT_SECRET"], name).toMatch(/^\$\{JWT_SECRET:\?[^}]+\}$/);
      expect(env["PUBLISH_KEY"], name).toMatch(/^\$\{PUBLISH_KEY:\?[^}]+\}$/);
      expect(env["ROUND_SEED_KEY"], name).toMatch(/^\$\{ROUND_SEED_KEY:\?[^}]+\}$/);
    }
  });

  it("publishes only NGINX, Prometheus and Grafana, each on BIND_ADDRESS defaulting to 127.0.0.1", () => {
    const publishing = Object.entries(written).filter(([, service]) => (service.ports ?? []).length > 0);
    expect(publishing.map(([name]) => name).sort()).toEqual([...PUBLISHED].sort());
    for (const [name, service] of publishing) {
      for (const port of service.ports ?? []) expect(port, name).toMatch(/^\$\{BIND_ADDRESS:-127\.0\.0\.1\}:/);
    }
  });
});

/** `docker-compose -f docker-compose.yml …` with exactly `env` (plus PATH and HOME). */
function compose(args: readonly string[], env: Readonly<Record<string, string>>): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync("docker-compose", ["-f", composeFile, ...args], {
    env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: process.env["HOME"] ?? "/tmp", ...env },
    encoding: "utf8",
    timeout: 30_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const hasCompose = spawnSync("docker-compose", ["version"], { encoding: "utf8", timeout: 30_000 }).status === 0;
if (!hasCompose) process.stdout.write("[docker-compose] resolved-file checks skipped: no docker-compose on PATH\n");

describe.runIf(hasCompose)("docker-compose.yml as Compose resolves it", () => {
  it("refuses to start without JWT_SECRET, PUBLISH_KEY or ROUND_SEED_KEY, naming the missing one", () => {
    const withoutSecret = compose(["config", "-q"], { PUBLISH_KEY: SECRETS.PUBLISH_KEY, ROUND_SEED_KEY: SECRETS.ROUND_SEED_KEY });
    expect(withoutSecret.status).not.toBe(0);
    expect(withoutSecret.stderr).toContain("set JWT_SECRET");
    const withoutKey = compose(["config", "-q"], { JWT_SECRET: SECRETS.JWT_SECRET, ROUND_SEED_KEY: SECRETS.ROUND_SEED_KEY });
    expect(withoutKey.status).not.toBe(0);
    expect(withoutKey.stderr).toContain("set PUBLISH_KEY");
    const withoutSeedKey = compose(["config", "-q"], { JWT_SECRET: SECRETS.JWT_SECRET, PUBLISH_KEY: SECRETS.PUBLISH_KEY });
    expect(withoutSeedKey.status).not.toBe(0);
    expect(withoutSeedKey.stderr).toContain("set ROUND_SEED_KEY");
  });

  it("with both, is valid, runs in production and publishes on 127.0.0.1", () => {
    expect(compose(["config", "-q"], SECRETS)).toMatchObject({ status: 0 });
    const resolved = compose(["config"], SECRETS);
    expect(resolved.status).toBe(0);
    const stack = services(resolved.stdout);
    for (const name of GATEWAYS) expect(stack[name]?.environment?.["GATEWAY_ENV"], name).toBe("production");
    for (const name of PUBLISHED) {
      const ports = stack[name]?.ports ?? [];
      expect(ports.length, name).toBeGreaterThan(0);
      for (const port of ports) expect(port, name).toMatch(/^127\.0\.0\.1:/);
    }
  });

  it("publishes on every interface only when BIND_ADDRESS says so", () => {
    const resolved = compose(["config"], { ...SECRETS, BIND_ADDRESS: "0.0.0.0" });
    expect(resolved.status).toBe(0);
    expect(services(resolved.stdout)["nginx"]?.ports).toEqual(["0.0.0.0:8080:8080/tcp"]);
  });
});
