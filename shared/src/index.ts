export * from "./codes.js";
export * from "./channels.js";
export * from "./protocol.js";
export * from "./requests.js";
export * from "./race-events.js";
export * from "./commands.js";
export * from "./json.js";
