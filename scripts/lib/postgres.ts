import { execFile, spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { chown, mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { freePort } from "./ports.js";
import { startProcess, type ManagedProcess } from "./process.js";

const execFileAsync = promisify(execFile);

export interface StartPostgresOptions {
  /** Fixed port; default: a free port. */
  port?: number;
  /**
   * Data directory. Reused when it already holds a cluster (PG_VERSION), so npm start keeps
   * data between runs. When the `postgres` user cannot reach it (e.g. the repo sits in a
   * mode-0700 `mktemp -d` folder), a fresh temp dir is used instead and a warning is logged.
   * Default: a fresh temp dir, removed on stop().
   */
  dataDir?: string;
  /**
   * Where the temporary directories go (the unix socket's, and a data dir that is not
   * persistent); default os.tmpdir(). npm start passes its run's temp dir, which it removes
   * even after a crash. The postgres user must be able to reach it.
   */
  tempDir?: string;
  /** Database to create if missing; default "gateway". */
  database?: string;
  /** Durability off (fsync, synchronous_commit, full_page_writes) for throwaway test clusters. */
  fast?: boolean;
  echo?: boolean;
  timeoutMs?: number;
  /** Where warnings go; default console.warn. */
  log?: (message: string) => void;
}

export interface PostgresHandle {
  url: string;
  port: number;
  dataDir: string;
  /** False when the data lives in a temp dir that stop() deletes. */
  persistent: boolean;
  proc: ManagedProcess;
  stop(): Promise<void>;
}

const PG_USER = "postgres";

/** Newest /usr/lib/postgresql/<major>/bin holding a postgres binary; PG_BIN overrides. */
export function postgresBinDir(): string {
  const override = process.env.PG_BIN;
  if (override) return override;
  const root = "/usr/lib/postgresql";
  const majors = existsSync(root)
    ? readdirSync(root)
        .filter((v) => /^\d+(\.\d+)?$/.test(v) && existsSync(path.join(root, v, "bin", "postgres")))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  const newest = majors[0];
  if (newest === undefined) {
    throw new Error(`no PostgreSQL server found under ${root}/*/bin (run scripts/ensure-system.sh)`);
  }
  return path.join(root, newest, "bin");
}

/**
 * initdb and postgres refuse to run as root, so every server-side command goes through
 * runuser. cwd "/" because PostgreSQL resolves its own executable path with getcwd(), which
 * fails when the caller's cwd is a directory the postgres user cannot read (CI's mktemp -d).
 */
function asPostgres(bin: string, args: string[]): { command: string; args: string[] } {
  if (process.getuid?.() !== 0) return { command: bin, args };
  return { command: "runuser", args: ["-u", PG_USER, "--", bin, ...args] };
}

function postgresIds(): { uid: number; gid: number } {
  const out = spawnSync("id", ["-u", PG_USER], { encoding: "utf8", timeout: 5000 });
  const outG = spawnSync("id", ["-g", PG_USER], { encoding: "utf8", timeout: 5000 });
  const uid = Number(out.stdout.trim());
  const gid = Number(outG.stdout.trim());
  if (out.status !== 0 || outG.status !== 0 || !Number.isInteger(uid) || !Number.isInteger(gid)) {
    throw new Error(`OS user "${PG_USER}" not found (install the postgresql package: scripts/ensure-system.sh)`);
  }
  return { uid, gid };
}

/** Whether the postgres user can write into `dir`, which needs search permission on every ancestor. */
function postgresCanUse(dir: string): boolean {
  if (process.getuid?.() !== 0) return true;
  const r = spawnSync("runuser", ["-u", PG_USER, "--", "test", "-w", dir, "-a", "-x", dir], {
    cwd: "/",
    timeout: 5000,
  });
  return r.status === 0;
}

async function makeTempDirFor(parent: string, prefix: string, ids: { uid: number; gid: number } | null): Promise<string> {
  const dir = await mkdtemp(path.join(parent, prefix));
  if (ids) await chown(dir, ids.uid, ids.gid);
  return dir;
}

async function prepareDataDir(
  wanted: string | undefined,
  tempParent: string,
  ids: { uid: number; gid: number } | null,
  log: (m: string) => void,
): Promise<{ dataDir: string; persistent: boolean }> {
  if (wanted === undefined) return { dataDir: await makeTempDirFor(tempParent, "gw-pgdata-", ids), persistent: false };
  const dataDir = path.resolve(wanted);
  // Only the last level is private: a recursive 0700 mkdir would also lock the postgres user
  // out of the parents it creates (e.g. .data/).
  await mkdir(path.dirname(dataDir), { recursive: true });
  if (!existsSync(dataDir)) await mkdir(dataDir, { mode: 0o700 });
  if (ids) {
    const st = await stat(dataDir);
    if (st.uid !== ids.uid) {
      // A cluster copied or restored by root would be refused by the server; hand it over.
      await execFileAsync("chown", ["-R", `${ids.uid}:${ids.gid}`, dataDir], { timeout: 30_000 });
    }
  }
  if (postgresCanUse(dataDir)) return { dataDir, persistent: true };
  const fallback = await makeTempDirFor(tempParent, "gw-pgdata-", ids);
  log(
    `postgres: user "${PG_USER}" cannot reach ${dataDir} (a parent directory is not searchable, ` +
      `e.g. a mode-0700 checkout); using ${fallback} instead. Data will NOT persist across runs.`,
  );
  return { dataDir: fallback, persistent: false };
}

export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresHandle> {
  const log = options.log ?? ((m: string) => console.warn(m));
  const database = options.database ?? "gateway";
  if (!/^[a-z_][a-z0-9_]*$/.test(database)) throw new Error(`invalid database name: ${database}`);
  const bin = postgresBinDir();
  const ids = process.getuid?.() === 0 ? postgresIds() : null;
  const timeoutMs = options.timeoutMs ?? 30_000;

  const tempParent = options.tempDir ?? os.tmpdir();
  const { dataDir, persistent } = await prepareDataDir(options.dataDir, tempParent, ids, log);
  // The unix socket goes to its own short path: sun_path is limited to 107 bytes and the
  // default /var/run/postgresql may not exist or belong to a system cluster.
  const socketDir = await makeTempDirFor(tempParent, "gw-pgsock-", ids);
  const cleanupTemp = async (): Promise<void> => {
    await rm(socketDir, { recursive: true, force: true });
    if (!persistent) await rm(dataDir, { recursive: true, force: true });
  };

  try {
    if (!existsSync(path.join(dataDir, "PG_VERSION"))) {
      const init = asPostgres(path.join(bin, "initdb"), [
        "-D", dataDir, "-U", PG_USER, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
      ]);
      await execFileAsync(init.command, init.args, { cwd: "/", timeout: timeoutMs }).catch((err: unknown) => {
        const e = err as { stderr?: string; message?: string };
        throw new Error(`initdb failed: ${e.stderr ?? e.message ?? String(err)}`);
      });
    }

    const port = options.port ?? (await freePort());
    const settings = ["-c", "listen_addresses=127.0.0.1"];
    if (options.fast) {
      settings.push("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off");
    }
    const server = asPostgres(path.join(bin, "postgres"), [
      "-D", dataDir, "-p", String(port), "-k", socketDir, ...settings,
    ]);
    const isReady = path.join(bin, "pg_isready");
    const proc = await startProcess({
      name: "postgres",
      command: server.command,
      args: server.args,
      cwd: "/",
      // SIGINT is PostgreSQL's "fast" shutdown: SIGTERM ("smart") would wait for every
      // client to disconnect, which a still-connected gateway may never do.
      stopSignal: "SIGINT",
      readyProbe: async () => {
        try {
          await execFileAsync(isReady, ["-q", "-h", "127.0.0.1", "-p", String(port), "-t", "1"], { timeout: 2000 });
          return true;
        } catch {
          // Non-zero exit: not accepting connections yet.
          return false;
        }
      },
      timeoutMs,
      echo: options.echo ?? false,
    });

    const stop = async (): Promise<void> => {
      await proc.stop(proc.stopSignal, 15_000);
      await cleanupTemp();
    };

    try {
      await ensureDatabase(bin, port, database, timeoutMs);
    } catch (err) {
      await stop();
      throw err;
    }

    return {
      url: `postgres://${PG_USER}@127.0.0.1:${port}/${database}`,
      port,
      dataDir,
      persistent,
      proc,
      stop,
    };
  } catch (err) {
    await cleanupTemp();
    throw err;
  }
}

async function ensureDatabase(bin: string, port: number, database: string, timeoutMs: number): Promise<void> {
  const common = ["-h", "127.0.0.1", "-p", String(port), "-U", PG_USER];
  const { stdout } = await execFileAsync(
    path.join(bin, "psql"),
    [...common, "-X", "-d", "postgres", "-tAc", `SELECT 1 FROM pg_database WHERE datname = '${database}'`],
    { timeout: timeoutMs },
  );
  if (stdout.trim() === "1") return;
  await execFileAsync(path.join(bin, "createdb"), [...common, database], { timeout: timeoutMs });
}
