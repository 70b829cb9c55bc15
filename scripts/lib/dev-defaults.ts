/**
 * Development-only secrets shared by `npm start` and `npm run token`, so a token minted
 * without flags is accepted by a cluster started without configuration. Never used when the
 * corresponding environment variable is set.
 */
export const DEV_JWT_SECRET = "dev-secret-change-me";
// The gateway requires PUBLISH_KEY to be at least 16 characters.
export const DEV_PUBLISH_KEY = "dev-publish-key-change-me";
