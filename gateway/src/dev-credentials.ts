/**
 * The development credentials `npm start`, `npm run token` and the k6 bench use
 * when none are given, so a token minted without flags is accepted by a
 * cluster started without configuration. They are public (they are in this
 * repository), so a node in production refuses to start with either of them.
 */
export const DEV_JWT_SECRET = "dev-secret-change-me";
// The gateway requires PUBLISH_KEY to be at least 16 characters.
export const DEV_PUBLISH_KEY = "dev-publish-key-change-me";
