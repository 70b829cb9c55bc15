// npm run token -- --sub alice [--channels 'a,b:*'] [--ttl 3600] [--secret X] [--iss I] [--aud A]
// Prints only the token, so `TOKEN=$(npm run -s token -- --sub alice)` works.
import jwt from "jsonwebtoken";
import { parseArgs } from "node:util";
import { DEV_JWT_SECRET } from "./lib/dev-defaults.js";

const USAGE =
  "usage: npm run -s token -- --sub <subject> [--channels 'a,b:*'] [--ttl seconds] [--secret s] [--iss issuer] [--aud audience]";

function fail(message: string): never {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

function main(): void {
  let values: { [k: string]: string | boolean | undefined };
  try {
    ({ values } = parseArgs({
      options: {
        sub: { type: "string" },
        channels: { type: "string" },
        ttl: { type: "string", default: "3600" },
        secret: { type: "string" },
        iss: { type: "string" },
        aud: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  }
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const str = (k: string): string | undefined => {
    const v = values[k];
    return typeof v === "string" ? v : undefined;
  };

  const sub = str("sub");
  if (!sub) fail("--sub is required");
  const ttl = Number(str("ttl"));
  if (!Number.isInteger(ttl) || ttl <= 0) fail("--ttl must be a positive integer (seconds)");
  const secret = str("secret") ?? process.env.JWT_SECRET ?? DEV_JWT_SECRET;

  const payload: { sub: string; channels?: string[] } = { sub };
  const channels = str("channels");
  if (channels !== undefined) {
    payload.channels = channels.split(",").map((c) => c.trim()).filter((c) => c.length > 0);
  }

  const signOptions: jwt.SignOptions = { algorithm: "HS256", expiresIn: ttl };
  const iss = str("iss");
  const aud = str("aud");
  if (iss) signOptions.issuer = iss;
  if (aud) signOptions.audience = aud;

  process.stdout.write(`${jwt.sign(payload, secret, signOptions)}\n`);
}

main();
