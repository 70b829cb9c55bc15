/**
 * Validates Kubernetes manifests offline against the API's own schemas, as
 * packaged by kubernetes-models (core API from the Kubernetes OpenAPI spec;
 * @kubernetes-models/keda and /prometheus-operator from those projects' CRDs).
 *
 * Two passes, because the schemas alone accept any unknown field (the API
 * server would prune or, with kubectl's strict field validation, refuse it):
 *   1. the models' JSON Schema validators: types, enums, formats, required fields;
 *   2. unknown fields: every document becomes an object literal typed with the
 *      model's TypeScript interface (generated from the same schemas), and the
 *      compiler's excess-property check names each field the schema lacks. It
 *      stops at the first problem inside one object, so a fix can reveal the next.
 */

import path from "node:path";
import ts from "typescript";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { HorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler";
import { Ingress } from "kubernetes-models/networking.k8s.io/v1/Ingress";
import { NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1/NetworkPolicy";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { Service } from "kubernetes-models/v1/Service";
import { ServiceAccount } from "kubernetes-models/v1/ServiceAccount";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

/** A parsed YAML document and where it came from, for messages. */
export interface ManifestDocument {
  readonly source: string;
  readonly body: Record<string, unknown>;
}

interface KindSchema {
  /** Constructs the model; its validate() throws on a schema violation. */
  readonly model: new (data: never) => { validate(): void };
  /** Module whose `I<Kind>` interface types the document. */
  readonly typesFrom: string;
}

/**
 * The kinds deploy/kubernetes may use. A kind missing here fails validation:
 * add it (with its kubernetes-models package) rather than skipping it.
 */
const KINDS: ReadonlyMap<string, KindSchema> = new Map<string, KindSchema>([
  ["v1/Namespace", { model: Namespace, typesFrom: "kubernetes-models/v1/Namespace" }],
  ["v1/ServiceAccount", { model: ServiceAccount, typesFrom: "kubernetes-models/v1/ServiceAccount" }],
  ["v1/ConfigMap", { model: ConfigMap, typesFrom: "kubernetes-models/v1/ConfigMap" }],
  ["v1/Service", { model: Service, typesFrom: "kubernetes-models/v1/Service" }],
  ["apps/v1/Deployment", { model: Deployment, typesFrom: "kubernetes-models/apps/v1/Deployment" }],
  ["policy/v1/PodDisruptionBudget", { model: PodDisruptionBudget, typesFrom: "kubernetes-models/policy/v1/PodDisruptionBudget" }],
  ["networking.k8s.io/v1/Ingress", { model: Ingress, typesFrom: "kubernetes-models/networking.k8s.io/v1/Ingress" }],
  ["networking.k8s.io/v1/NetworkPolicy", { model: NetworkPolicy, typesFrom: "kubernetes-models/networking.k8s.io/v1/NetworkPolicy" }],
  ["autoscaling/v2/HorizontalPodAutoscaler", { model: HorizontalPodAutoscaler, typesFrom: "kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler" }],
  ["monitoring.coreos.com/v1/ServiceMonitor", { model: ServiceMonitor, typesFrom: "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor" }],
  ["keda.sh/v1alpha1/ScaledObject", { model: ScaledObject, typesFrom: "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject" }],
]);

function kindKey(doc: ManifestDocument): string {
  return `${String(doc.body["apiVersion"])}/${String(doc.body["kind"])}`;
}

function describe(doc: ManifestDocument): string {
  const name = (doc.body["metadata"] as { name?: unknown } | undefined)?.name;
  return `${doc.source}: ${kindKey(doc)} ${typeof name === "string" ? name : "(no name)"}`;
}

/** Schema violations (types, enums, formats, required fields), one line each. */
export function schemaErrors(docs: readonly ManifestDocument[]): string[] {
  const errors: string[] = [];
  for (const doc of docs) {
    const kind = KINDS.get(kindKey(doc));
    if (kind === undefined) {
      errors.push(`${describe(doc)}: no schema for this apiVersion/kind`);
      continue;
    }
    try {
      new kind.model(doc.body as never).validate();
    } catch (err) {
      errors.push(`${describe(doc)}: ${(err as Error).message}`);
    }
  }
  return errors;
}

/** The innermost node that spans `position`. */
function nodeAt(root: ts.Node, position: number): ts.Node {
  let found: ts.Node = root;
  const visit = (node: ts.Node): void => {
    if (position >= node.getStart() && position < node.getEnd()) {
      found = node;
      ts.forEachChild(node, visit);
    }
  };
  ts.forEachChild(root, visit);
  return found;
}

/** `spec.template.spec.containers[0].bogus` for a node inside a document literal. */
function fieldPath(node: ts.Node): { index: number; path: string } | null {
  const parts: string[] = [];
  let current: ts.Node = node;
  while (!ts.isSourceFile(current)) {
    const parent: ts.Node = current.parent;
    if (ts.isPropertyAssignment(current) && ts.isStringLiteral(current.name)) {
      parts.unshift(current.name.text);
    } else if (ts.isArrayLiteralExpression(parent)) {
      parts.unshift(`[${parent.elements.indexOf(current as ts.Expression)}]`);
    } else if (ts.isVariableDeclaration(current) && ts.isIdentifier(current.name)) {
      const index = Number(current.name.text.replace("doc", ""));
      return { index, path: parts.join(".").replace(/\.\[/g, "[") };
    }
    current = parent;
  }
  return null;
}

/**
 * Fields the schemas do not define, one line each (`file: Kind name: path: message`).
 * Documents of unknown kinds are left to schemaErrors().
 */
export function unknownFieldErrors(docs: readonly ManifestDocument[], repoRoot: string): string[] {
  const typed = docs.filter((doc) => KINDS.has(kindKey(doc)));
  const imports: string[] = [];
  const declarations: string[] = [];
  const typeNames = new Map<string, string>();
  for (const doc of typed) {
    const key = kindKey(doc);
    const kind = KINDS.get(key);
    if (kind === undefined) continue;
    let typeName = typeNames.get(key);
    if (typeName === undefined) {
      typeName = `T${typeNames.size}`;
      typeNames.set(key, typeName);
      imports.push(`import type { I${String(doc.body["kind"])} as ${typeName} } from ${JSON.stringify(kind.typesFrom)};`);
    }
    declarations.push(`export const doc${declarations.length}: ${typeName} = ${JSON.stringify(doc.body, null, 1)};`);
  }
  const text = [...imports, ...declarations].join("\n");

  // A file that exists only in memory, inside the repository so node_modules resolves.
  const fileName = path.join(repoRoot, "deploy", "test", "manifests.virtual.ts");
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
  };
  const host = ts.createCompilerHost(options);
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, true);
  const readSource = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.getSourceFile = (name, languageVersion, ...rest) => (name === fileName ? source : readSource(name, languageVersion, ...rest));
  host.fileExists = (name) => name === fileName || fileExists(name);
  const program = ts.createProgram([fileName], options, host);

  const errors: string[] = [];
  for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, " ");
    const where = diagnostic.file === source && diagnostic.start !== undefined ? fieldPath(nodeAt(source, diagnostic.start)) : null;
    const doc = where === null ? undefined : typed[where.index];
    // Long inline types make TypeScript's messages unreadable; the path says where.
    const short = message.replace(/ in type '.*$/s, "").replace(/ does not exist$/, " is not a field here");
    errors.push(doc === undefined || where === null ? `manifest type check: ${message}` : `${describe(doc)}: ${where.path}: ${short}`);
  }
  return errors;
}
