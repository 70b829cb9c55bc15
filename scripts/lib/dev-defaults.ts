/**
 * Development-only secrets shared by `npm start` and `npm run token`, so a token minted
 * without flags is accepted by a cluster started without configuration. Never used when the
 * corresponding environment variable is set. They live with the gateway, which refuses them
 * in production (GATEWAY_ENV=production, the default).
 */
export { DEV_JWT_SECRET, DEV_PUBLISH_KEY } from "../../gateway/src/dev-credentials.js";
