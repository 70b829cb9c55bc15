/**
 * Kinds of environment variable: each one carries its name, its default
 * (the value used when it is unset, and how the README shows it), its
 * meaning, and how it is parsed. gateway/src/config.ts declares the node's
 * variables with them, so a default is written once.
 *
 * A variable set to only whitespace counts as unset. A value that does not
 * parse throws ConfigError naming the variable.
 */

export type Env = Readonly<Record<string, string | undefined>>;

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`);
    this.name = "ConfigError";
  }
}

/** One environment variable as the README's configuration table shows it. */
export interface ConfigVariable {
  readonly name: string;
  /** The default column, in Markdown: the default value in code style, how it is derived in words, or "—" for none. */
  readonly documentedDefault: string;
  /** The meaning column, in Markdown. */
  readonly description: string;
}

export interface Range {
  readonly min: number;
  readonly max: number;
}

const NONE = "—";

function code(value: string): string {
  return `\`${value}\``;
}

/** The trimmed value, or undefined when unset or blank. */
function raw(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

function parseInteger(name: string, text: string, range: Range): number {
  if (!/^-?\d+$/.test(text)) throw new ConfigError(name, `expected an integer, got "${text}"`);
  const value = Number(text);
  if (value < range.min || value > range.max) throw new ConfigError(name, `must be between ${range.min} and ${range.max}, got ${value}`);
  return value;
}

/** A whole number within a range, with a default. */
export class IntegerVariable implements ConfigVariable {
  readonly documentedDefault: string;

  constructor(
    readonly name: string,
    private readonly fallback: number,
    private readonly range: Range,
    readonly description: string,
  ) {
    this.documentedDefault = code(String(fallback));
  }

  /** `bounds` narrows the range where it depends on another variable; the default is not checked against it. */
  read(env: Env, bounds: Partial<Range> = {}): number {
    const text = raw(env, this.name);
    return text === undefined ? this.fallback : parseInteger(this.name, text, { ...this.range, ...bounds });
  }
}

/** A whole number within a range, or null when unset (the node then derives it, as `documentedDefault` says). */
export class OptionalIntegerVariable implements ConfigVariable {
  constructor(
    readonly name: string,
    readonly documentedDefault: string,
    private readonly range: Range,
    readonly description: string,
  ) {}

  read(env: Env): number | null {
    const text = raw(env, this.name);
    return text === undefined ? null : parseInteger(this.name, text, this.range);
  }
}

/** One of a fixed set of words, with a default. */
export class ChoiceVariable<T extends string> implements ConfigVariable {
  readonly documentedDefault: string;

  constructor(
    readonly name: string,
    private readonly allowed: readonly T[],
    private readonly fallback: T,
    readonly description: string,
  ) {
    this.documentedDefault = code(fallback);
  }

  read(env: Env): T {
    const text = raw(env, this.name);
    if (text === undefined) return this.fallback;
    const match = this.allowed.find((candidate) => candidate === text);
    if (match === undefined) throw new ConfigError(this.name, `expected one of ${this.allowed.join(", ")}, got "${text}"`);
    return match;
  }
}

/** `true` or `false`, with a default. */
export class FlagVariable implements ConfigVariable {
  private readonly choice: ChoiceVariable<"true" | "false">;

  constructor(
    readonly name: string,
    fallback: boolean,
    readonly description: string,
  ) {
    this.choice = new ChoiceVariable(name, ["true", "false"], fallback ? "true" : "false", description);
  }

  get documentedDefault(): string {
    return this.choice.documentedDefault;
  }

  read(env: Env): boolean {
    return this.choice.read(env) === "true";
  }
}

/** Text with a default: a literal, or one computed at start-up (then documented in words). */
export class TextVariable implements ConfigVariable {
  readonly documentedDefault: string;
  private readonly fallback: () => string;

  constructor(
    readonly name: string,
    fallback: string | { readonly documented: string; readonly compute: () => string },
    readonly description: string,
  ) {
    if (typeof fallback === "string") {
      this.documentedDefault = code(fallback);
      this.fallback = () => fallback;
    } else {
      this.documentedDefault = fallback.documented;
      this.fallback = fallback.compute;
    }
  }

  read(env: Env): string {
    return raw(env, this.name) ?? this.fallback();
  }
}

/** Text without a default: undefined when unset (the parser decides whether that is allowed). */
export class OptionalTextVariable implements ConfigVariable {
  readonly documentedDefault = NONE;

  constructor(
    readonly name: string,
    readonly description: string,
  ) {}

  read(env: Env): string | undefined {
    return raw(env, this.name);
  }
}

/**
 * A comma list; blank items are dropped. Undefined when unset or empty: the
 * parser then applies what `documentedDefault` says ("—" when nothing).
 */
export class ListVariable implements ConfigVariable {
  constructor(
    readonly name: string,
    readonly documentedDefault: string,
    readonly description: string,
  ) {}

  read(env: Env): string[] | undefined {
    const text = raw(env, this.name);
    if (text === undefined) return undefined;
    const items = text
      .split(",")
      .map((item) => item.trim())
      .filter((item) => item.length > 0);
    return items.length > 0 ? items : undefined;
  }
}

/** A list variable with no default. */
export function optionalList(name: string, description: string): ListVariable {
  return new ListVariable(name, NONE, description);
}
