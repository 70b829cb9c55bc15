// npm run build:web: the browser SDK bundle and the live page into dist/web.
//   dist/web/sdk.js           the client SDK (shared/src/client), ESM, minified: for any web app
//   dist/web/verify-round.js  the SDK's verifyRound(), on its own: only screens that check rounds load it
//   dist/web/app.js           the live page's script; imports both instead of bundling them again
//   dist/web/index.html, style.css
// Prints each file's size and fails when the SDK outgrows its budget.
import { build, type Plugin } from "esbuild";
import { copyFile, mkdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { repoRoot } from "./lib/paths.js";

/**
 * The SDK must stay small enough to load on every screen; raise this only deliberately.
 * 10 → 11 KB for resume (since on connect, dedup, held frames, gap resync, `resumed`):
 * the bundle went from 10,200 to 11,132 bytes (gzip 3,745 to 4,075).
 * 11 → 11.5 KB for the server API: the close codes 4000 and 4003 in the reconnect table and
 * `presence()` took it to 11,271 bytes (gzip 4.0 KB); without `presence()` it was 11,197.
 */
const SDK_BUDGET_BYTES = 11.5 * 1024;
const VERIFY_BUDGET_BYTES = 2 * 1024;

const root = repoRoot();
const out = path.join(root, "dist", "web");
const sdkEntry = path.join(root, "shared", "src", "client", "index.ts");
const verifyEntry = path.join(root, "shared", "src", "client", "verify-round.ts");

// The page imports the SDK's source for its types; at run time it loads the served bundles.
const sdkAsExternal: Plugin = {
  name: "sdk-as-external",
  setup(builder) {
    builder.onResolve({ filter: /shared\/src\/client\/index\.js$/ }, () => ({ path: "./sdk.js", external: true }));
    builder.onResolve({ filter: /shared\/src\/client\/verify-round\.js$/ }, () => ({ path: "./verify-round.js", external: true }));
  },
};

// The codes table's `meaning` and `reason` texts are for people reading the source and
// docs, and for the server's close frames; a browser needs only the codes and their
// `reconnect` flags (the close event carries its own reason). If the table's layout
// changes, this strips nothing and the bundle just gets bigger (the budget check says so).
const codesWithoutProse: Plugin = {
  name: "codes-without-prose",
  setup(builder) {
    builder.onLoad({ filter: /shared\/src\/codes\.ts$/ }, async (args) => ({
      contents: (await readFile(args.path, "utf8")).replace(/^\s*(?:meaning|reason): "(?:[^"\\]|\\.)*",?$/gm, ""),
      loader: "ts",
    }));
  },
};

async function main(): Promise<void> {
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  const common = {
    bundle: true,
    format: "esm",
    platform: "browser",
    // Browsers since 2021 (class fields), Electron, Node ≥ 16: no syntax lowering beyond that.
    target: "es2022",
    minify: true,
    sourcemap: "linked",
    legalComments: "none",
    logLevel: "warning",
  } as const;
  await build({ ...common, entryPoints: [sdkEntry], outfile: path.join(out, "sdk.js"), plugins: [codesWithoutProse] });
  await build({ ...common, entryPoints: [verifyEntry], outfile: path.join(out, "verify-round.js") });
  await build({ ...common, entryPoints: [path.join(root, "web", "app.ts")], outfile: path.join(out, "app.js"), plugins: [sdkAsExternal] });
  for (const asset of ["index.html", "style.css"]) await copyFile(path.join(root, "web", asset), path.join(out, asset));

  const budgets: Readonly<Record<string, number>> = { "sdk.js": SDK_BUDGET_BYTES, "verify-round.js": VERIFY_BUDGET_BYTES };
  const over: string[] = [];
  for (const name of ["sdk.js", "verify-round.js", "app.js", "index.html", "style.css"]) {
    const body = await readFile(path.join(out, name));
    const gzip = gzipSync(body).length;
    process.stdout.write(`build:web  dist/web/${name.padEnd(15)} ${(body.length / 1024).toFixed(1).padStart(5)} KB  (gzip ${(gzip / 1024).toFixed(1)} KB)\n`);
    const budget = budgets[name];
    if (budget !== undefined && body.length > budget) over.push(`${name} is over its ${budget / 1024} KB budget`);
  }
  if (over.length > 0) {
    process.stderr.write(`build:web: ${over.join("; ")}\n`);
    process.exit(1);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`build:web failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
