/**
 * Runs before every test file (vitest.config.ts setupFiles): every answer a
 * gateway node gives to the file's requests is checked against
 * docs/openapi.yaml (openapi-recorder.ts), and the test that received one
 * the document does not allow fails, with what is wrong.
 */

import { afterAll, afterEach } from "vitest";
import { installFetchRecorder, takeProblems } from "./openapi-recorder.js";

installFetchRecorder();

async function failOnProblems(): Promise<void> {
  const problems = await takeProblems();
  if (problems.length > 0) throw new Error(`answers that docs/openapi.yaml does not allow:\n${problems.join("\n")}`);
}

afterEach(failOnProblems);
// Answers received in beforeAll and afterAll hooks.
afterAll(failOnProblems);
