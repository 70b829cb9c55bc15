/**
 * deploy/kubernetes: every document validated against the Kubernetes schemas
 * (unknown fields included), every kustomization complete, and the figures the
 * manifests share with each other, the gateway and docs/operations.md kept in
 * step — the checks a schema cannot make.
 */

import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { pino } from "pino";
import { parseAllDocuments } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONFIG_VARIABLES, loadConfig, type GatewayConfig } from "../../gateway/src/config.js";
import { attachProbes } from "../../gateway/src/http/probes.js";
import { SHUTDOWN_WATCHDOG_MARGIN_MS } from "../../gateway/src/lifecycle/shutdown.js";
import { GatewayMetrics } from "../../gateway/src/metrics/gateway-metrics.js";
import { closeListenSocket, createApp, listen, listeningPort } from "../../gateway/src/server.js";
import { repoRoot } from "../../scripts/lib/paths.js";
import { schemaErrors, unknownFieldErrors, type ManifestDocument } from "./support/kubernetes-schemas.js";

const root = repoRoot();
const manifestsDir = path.join(root, "deploy", "kubernetes");

/** Connections per pod the autoscaler aims for, as a share of the pod's capacity. */
const TARGET_SHARE_OF_CAPACITY = 0.8;
/** The memory alert (prometheus/rules) fires at 80 % of gateway_memory_limit_bytes. */
const MEMORY_ALERT_SHARE = 0.8;
/**
 * docs/performance.md: RSS of a node holding its first 1,000 sockets (raw-1k,
 * 99 MB), and the dearest connection measured (Socket.IO, sio-10k: 13.00 KB read
 * without a GC first, so with the handshakes' uncollected garbage; 8.17 KB after one).
 */
const NODE_BASE_RSS_BYTES = 99e6;
const WORST_RSS_BYTES_PER_CONNECTION = 13.0e3;
/** Postgres' default max_connections; the ConfigMap's comment budgets against it. */
const POSTGRES_DEFAULT_MAX_CONNECTIONS = 100;
/** Environment the pod sets for Node.js itself, not for the gateway's config. */
const NODE_RUNTIME_VARIABLES = new Set(["NODE_OPTIONS"]);
const CAPACITY_ANNOTATION = "realtime-gateway/capacity-connections";

// ---------------------------------------------------------------------------
// Loading

interface ManifestFile {
  /** Relative to deploy/kubernetes, with forward slashes. */
  readonly relative: string;
  readonly docs: ManifestDocument[];
}

function yamlFiles(dir: string): string[] {
  const found: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) found.push(...yamlFiles(full));
    else if (/\.ya?ml$/.test(name)) found.push(full);
  }
  return found;
}

function parseYaml(text: string, source: string): ManifestDocument[] {
  const docs: ManifestDocument[] = [];
  for (const [index, parsed] of parseAllDocuments(text).entries()) {
    const problems = [...parsed.errors, ...parsed.warnings];
    if (problems.length > 0) throw new Error(`${source} document ${index}: ${problems.map((p) => p.message).join("; ")}`);
    const body: unknown = parsed.toJS();
    if (body === null || body === undefined) continue;
    if (typeof body !== "object" || Array.isArray(body)) throw new Error(`${source} document ${index}: not a mapping`);
    docs.push({ source, body: body as Record<string, unknown> });
  }
  return docs;
}

function loadManifests(): ManifestFile[] {
  return yamlFiles(manifestsDir).map((full) => {
    const relative = path.relative(manifestsDir, full).split(path.sep).join("/");
    return { relative, docs: parseYaml(readFileSync(full, "utf8"), `deploy/kubernetes/${relative}`) };
  });
}

function isKustomization(doc: ManifestDocument): boolean {
  return doc.body["kind"] === "Kustomization";
}

// Narrow views of the documents: only the fields the cross-checks read.
interface Probe {
  httpGet?: { path?: string; port?: string | number };
  periodSeconds?: number;
  failureThreshold?: number;
}
interface Container {
  name: string;
  ports?: Array<{ name?: string; containerPort: number }>;
  env?: Array<{ name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }>;
  envFrom?: Array<{ configMapRef?: { name: string }; secretRef?: { name: string } }>;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  lifecycle?: { preStop?: { exec?: { command?: string[] } } };
  securityContext?: { readOnlyRootFilesystem?: boolean; allowPrivilegeEscalation?: boolean };
}
interface PodSpec {
  containers: Container[];
  terminationGracePeriodSeconds?: number;
  automountServiceAccountToken?: boolean;
  serviceAccountName?: string;
  securityContext?: { runAsNonRoot?: boolean };
  topologySpreadConstraints?: Array<{ labelSelector?: { matchLabels?: Record<string, string> } }>;
}
interface DeploymentView {
  metadata: { name: string; annotations?: Record<string, string> };
  spec: {
    replicas?: number;
    minReadySeconds?: number;
    selector: { matchLabels: Record<string, string> };
    strategy?: { rollingUpdate?: { maxSurge?: number | string; maxUnavailable?: number | string } };
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
  };
}
interface ScalingPolicy {
  type: string;
  value: number;
  periodSeconds: number;
}
interface ScalingBehavior {
  scaleUp?: { stabilizationWindowSeconds?: number; policies?: ScalingPolicy[] };
  scaleDown?: { stabilizationWindowSeconds?: number; selectPolicy?: string; policies?: ScalingPolicy[] };
}
interface HpaView {
  spec: {
    scaleTargetRef: { kind: string; name: string };
    minReplicas: number;
    maxReplicas: number;
    metrics: Array<{ type: string; pods?: { metric: { name: string }; target: { type: string; averageValue?: string | number } } }>;
    behavior: ScalingBehavior;
  };
}
interface ScaledObjectView {
  spec: {
    scaleTargetRef: { kind?: string; name: string };
    minReplicaCount: number;
    maxReplicaCount: number;
    advanced: { horizontalPodAutoscalerConfig: { behavior: ScalingBehavior } };
    triggers: Array<{ type: string; metricType?: string; metadata: Record<string, string> }>;
  };
}
interface IngressView {
  metadata: { name: string; annotations?: Record<string, string> };
  spec: { rules: Array<{ http: { paths: Array<{ path: string; pathType: string; backend: { service: { name: string; port: { name?: string; number?: number } } } }> } }> };
}

// ---------------------------------------------------------------------------

const files = loadManifests();
const kustomizations = files.flatMap((file) => file.docs.filter(isKustomization).map((doc) => ({ file, doc })));
const objects = files.flatMap((file) => file.docs.filter((doc) => !isKustomization(doc)));

function only<T>(kind: string, name?: string): T {
  const matches = objects.filter((doc) => doc.body["kind"] === kind && (name === undefined || (doc.body["metadata"] as { name?: string }).name === name));
  if (matches.length !== 1) throw new Error(`expected exactly one ${kind}${name === undefined ? "" : ` ${name}`}, found ${matches.length}`);
  return (matches[0] as ManifestDocument).body as T;
}

const deployment = only<DeploymentView>("Deployment", "realtime-gateway");
const podSpec = deployment.spec.template.spec;
const podLabels = deployment.spec.template.metadata.labels;
const gateway = podSpec.containers.find((container) => container.name === "gateway") as Container;
const configMap = only<{ metadata: { name: string }; data: Record<string, string> }>("ConfigMap", "realtime-gateway");
const hpa = only<HpaView>("HorizontalPodAutoscaler", "realtime-gateway");
const scaledObject = only<ScaledObjectView>("ScaledObject", "realtime-gateway");
const service = only<{ metadata: { name: string }; spec: { selector: Record<string, string>; ports: Array<{ name: string; port: number; targetPort: string | number }> } }>("Service", "realtime-gateway");
const serviceMonitor = only<{ spec: { selector: { matchLabels: Record<string, string> }; endpoints: Array<{ port: string; path: string; relabelings?: Array<{ targetLabel?: string; replacement?: string }> }> } }>("ServiceMonitor", "realtime-gateway");
const ingresses = objects.filter((doc) => doc.body["kind"] === "Ingress").map((doc) => doc.body as unknown as IngressView);
const operationsDoc = readFileSync(path.join(root, "docs", "operations.md"), "utf8");

const secretEnv = (gateway.env ?? []).filter((variable) => variable.valueFrom?.secretKeyRef !== undefined);
const literalEnv = (gateway.env ?? []).filter((variable) => variable.value !== undefined);

/** The gateway's parsed configuration for these pods, through its own parser. */
function podConfig(): GatewayConfig {
  const placeholders: Record<string, string> = {
    JWT_SECRET: "placeholder-secret-0123456789",
    PUBLISH_KEY: "placeholder-publish-key-0123456789",
    ROUND_SEED_KEY: "placeholder-round-seed-key-0123456789",
    REDIS_URL: "redis://redis.example:6379",
    DATABASE_URL: "postgres://gateway:secret@postgres.example:5432/gateway",
  };
  const env: Record<string, string> = { ...configMap.data, NODE_ID: "realtime-gateway-5d9c7b8f4-x2x7k" };
  for (const variable of secretEnv) env[variable.name] = placeholders[variable.name] ?? "placeholder";
  for (const variable of literalEnv) env[variable.name] = variable.value as string;
  return loadConfig(env);
}

function containerPort(port: string | number | undefined): number | undefined {
  if (typeof port === "number") return port;
  return gateway.ports?.find((candidate) => candidate.name === port)?.containerPort;
}

function bytes(quantity: string | undefined): number {
  const match = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|k|M|G)?$/.exec(quantity ?? "");
  if (match === null) throw new Error(`not a memory quantity: ${String(quantity)}`);
  const units: Record<string, number> = { "": 1, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, k: 1e3, M: 1e6, G: 1e9 };
  return Number(match[1]) * (units[match[2] ?? ""] ?? Number.NaN);
}

function preStopSeconds(): number {
  const command = gateway.lifecycle?.preStop?.exec?.command ?? [];
  expect(command[0], "preStop is `sleep <seconds>`").toBe("sleep");
  const seconds = Number(command[1]);
  expect(Number.isInteger(seconds) && seconds > 0, `preStop sleep "${String(command[1])}"`).toBe(true);
  return seconds;
}

function capacity(): number {
  const value = Number(deployment.metadata.annotations?.[CAPACITY_ANNOTATION]);
  expect(Number.isInteger(value) && value > 0, `${CAPACITY_ANNOTATION} on the Deployment`).toBe(true);
  return value;
}

function matches(selector: Record<string, string> | undefined, labels: Record<string, string>): boolean {
  const entries = Object.entries(selector ?? {});
  return entries.length > 0 && entries.every(([key, value]) => labels[key] === value);
}

// ---------------------------------------------------------------------------

describe("the schema validator", () => {
  const base = {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "probe" },
    spec: { selector: { matchLabels: { a: "b" } }, template: { metadata: { labels: { a: "b" } }, spec: { containers: [{ name: "c", image: "i" }] } } },
  };

  it("accepts a minimal valid Deployment", () => {
    const docs = [{ source: "inline", body: base }];
    expect(schemaErrors(docs)).toEqual([]);
    expect(unknownFieldErrors(docs, root)).toEqual([]);
  });

  it("names a field the schema lacks, with its path, in core kinds and in CRDs", () => {
    const deploymentWithTypo = structuredClone(base);
    (deploymentWithTypo.spec.template.spec.containers[0] as Record<string, unknown>)["readinesProbe"] = { httpGet: { path: "/readyz", port: 9001 } };
    const scaledObjectWithTypo = {
      apiVersion: "keda.sh/v1alpha1",
      kind: "ScaledObject",
      metadata: { name: "probe" },
      spec: { scaleTargetRef: { name: "x" }, triggers: [{ type: "prometheus", metadata: {} }], cooldownSeconds: 300 },
    };
    const monitorWithTypo = {
      apiVersion: "monitoring.coreos.com/v1",
      kind: "ServiceMonitor",
      metadata: { name: "probe" },
      spec: { selector: {}, endpoints: [{ port: "http", scrapeInterval: "15s" }] },
    };
    const errors = unknownFieldErrors(
      [
        { source: "a.yaml", body: deploymentWithTypo },
        { source: "b.yaml", body: scaledObjectWithTypo },
        { source: "c.yaml", body: monitorWithTypo },
      ],
      root,
    );
    expect(errors).toHaveLength(3);
    expect(errors[0]).toMatch(/^a\.yaml: apps\/v1\/Deployment probe: spec\.template\.spec\.containers\[0\]\.readinesProbe: .*readinesProbe/);
    expect(errors[1]).toMatch(/^b\.yaml: keda\.sh\/v1alpha1\/ScaledObject probe: spec\.cooldownSeconds: /);
    expect(errors[2]).toMatch(/^c\.yaml: monitoring\.coreos\.com\/v1\/ServiceMonitor probe: spec\.endpoints\[0\]\.scrapeInterval: /);
  });

  it("refuses wrong types, missing required fields and unknown kinds", () => {
    const badPort = structuredClone(base);
    (badPort.spec.template.spec.containers[0] as Record<string, unknown>)["ports"] = [{ containerPort: "http" }];
    const noSelector = structuredClone(base) as { spec: Record<string, unknown> };
    delete noSelector.spec["selector"];
    const errors = schemaErrors([
      { source: "port.yaml", body: badPort },
      { source: "selector.yaml", body: noSelector },
      { source: "kind.yaml", body: { apiVersion: "example.com/v1", kind: "Widget", metadata: { name: "w" } } },
    ]);
    expect(errors).toHaveLength(3);
    expect(errors[0]).toMatch(/^port\.yaml: .*containerPort/);
    expect(errors[1]).toMatch(/^selector\.yaml: .*selector/);
    expect(errors[2]).toMatch(/^kind\.yaml: example\.com\/v1\/Widget w: no schema/);
  });
});

describe("deploy/kubernetes", () => {
  it("has manifests to check", () => {
    expect(objects.length).toBeGreaterThanOrEqual(12);
    expect(kustomizations.map(({ file }) => file.relative).sort()).toEqual(["base/kustomization.yaml", "keda/kustomization.yaml", "kustomization.yaml", "prometheus-adapter/kustomization.yaml"]);
  });

  it("every document matches its Kubernetes schema", () => {
    expect(schemaErrors(objects)).toEqual([]);
  });

  it("no document sets a field its schema does not define", () => {
    expect(unknownFieldErrors(objects, root)).toEqual([]);
  });

  it("each kustomization lists every manifest in its folder and only paths that exist", () => {
    const known = new Set(["apiVersion", "kind", "namespace", "labels", "resources", "images", "patches", "configMapGenerator", "secretGenerator", "components"]);
    for (const { file, doc } of kustomizations) {
      expect(doc.body["apiVersion"], file.relative).toBe("kustomize.config.k8s.io/v1beta1");
      expect(Object.keys(doc.body).filter((key) => !known.has(key)), `${file.relative}: unknown keys`).toEqual([]);
      const folder = path.posix.dirname(file.relative);
      const resources = (doc.body["resources"] as string[] | undefined) ?? [];
      const inFolder = files
        .filter((other) => path.posix.dirname(other.relative) === folder && !other.docs.some(isKustomization))
        .map((other) => path.posix.basename(other.relative));
      const listedFiles = resources.filter((resource) => /\.ya?ml$/.test(resource));
      expect([...listedFiles].sort(), `${file.relative} lists each manifest beside it`).toEqual([...inFolder].sort());
      for (const directory of resources.filter((resource) => !/\.ya?ml$/.test(resource))) {
        const target = path.posix.normalize(path.posix.join(folder, directory));
        expect(
          files.some((other) => other.relative === path.posix.join(target === "." ? "" : target, "kustomization.yaml")),
          `${file.relative}: ${directory} is a folder with a kustomization.yaml`,
        ).toBe(true);
      }
    }
  });

  const kubectl = ((): boolean => {
    try {
      execFileSync("kubectl", ["version", "--client"], { stdio: "ignore" });
      return true;
    } catch {
      return false;
    }
  })();

  it.skipIf(!kubectl)("kubectl kustomize renders each entry point into valid documents", () => {
    const rendered: Record<string, string[]> = {};
    for (const entry of ["", "keda", "prometheus-adapter"]) {
      const text = execFileSync("kubectl", ["kustomize", path.join(manifestsDir, entry)], { encoding: "utf8" });
      const docs = parseYaml(text, `kubectl kustomize deploy/kubernetes/${entry}`);
      expect(schemaErrors(docs)).toEqual([]);
      expect(unknownFieldErrors(docs, root)).toEqual([]);
      rendered[entry] = docs.map((doc) => `${String(doc.body["kind"])} ${String((doc.body["metadata"] as { namespace?: string }).namespace)}`).sort();
    }
    const common = ["ConfigMap realtime-gateway", "Deployment realtime-gateway", "Ingress realtime-gateway", "Ingress realtime-gateway", "Namespace undefined", "NetworkPolicy realtime-gateway", "PodDisruptionBudget realtime-gateway", "Service realtime-gateway", "ServiceAccount realtime-gateway", "ServiceMonitor realtime-gateway"];
    expect(rendered[""]).toEqual([...common, "HorizontalPodAutoscaler realtime-gateway"].sort());
    expect(rendered["keda"]).toEqual([...common, "ScaledObject realtime-gateway"].sort());
    expect(rendered["prometheus-adapter"]).toEqual(["ConfigMap monitoring"]);
  });
});

describe("gateway pods", () => {
  it("set only variables the gateway reads, with values its config parser accepts", () => {
    const gatewayVariables = new Set(CONFIG_VARIABLES.map((variable) => variable.name));
    const set = [...Object.keys(configMap.data), ...(gateway.env ?? []).map((variable) => variable.name)];
    expect(set.filter((name) => !gatewayVariables.has(name) && !NODE_RUNTIME_VARIABLES.has(name))).toEqual([]);
    expect(new Set(set).size, "no variable set twice").toBe(set.length);
    expect(gateway.envFrom).toEqual([{ configMapRef: { name: configMap.metadata.name } }]);
    const config = podConfig();
    expect(config.nodeId).toBe("realtime-gateway-5d9c7b8f4-x2x7k");
    expect(config.env).toBe("production");
    expect(gateway.env?.find((variable) => variable.name === "NODE_ID")).toEqual({ name: "NODE_ID", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } });
  });

  it("take credentials from the Secret that docs/operations.md tells operators to create", () => {
    const names = secretEnv.map((variable) => variable.name).sort();
    expect(names).toEqual(["DATABASE_URL", "JWT_SECRET", "PUBLISH_KEY", "REDIS_URL", "ROUND_SEED_KEY"]);
    for (const variable of secretEnv) expect(variable.valueFrom?.secretKeyRef).toEqual({ name: "realtime-gateway", key: variable.name });
    const command = /kubectl -n realtime-gateway create secret generic realtime-gateway((?:[^\n]*\\\n)*[^\n]*)/.exec(operationsDoc);
    expect(command, "docs/operations.md has the `kubectl create secret` command").not.toBeNull();
    const documented = [...(command?.[1] ?? "").matchAll(/--from-(?:literal|file)=([A-Z_]+)=/g)].map((match) => match[1]).sort();
    expect(documented).toEqual(names);
  });

  describe("probes and scrapes reach the gateway's real routes", () => {
    let port = 0;
    let token: Awaited<ReturnType<typeof listen>> | null = null;
    const metrics = new GatewayMetrics("probe-test", bytes(gateway.resources?.limits?.["memory"]));

    // The node's own uWS app and probe routes on a free port; a node that is ready.
    beforeAll(async () => {
      const { app } = createApp();
      attachProbes(app, { nodeId: "probe-test", notReadyReason: () => null, registry: metrics.registry, metrics, log: pino({ level: "silent" }) });
      token = await listen(app, "127.0.0.1", 0);
      port = listeningPort(token);
    });
    afterAll(() => {
      if (token !== null) closeListenSocket(token);
    });

    const probes: Array<[string, keyof Container]> = [
      ["startup", "startupProbe"],
      ["readiness", "readinessProbe"],
      ["liveness", "livenessProbe"],
    ];
    for (const [name, field] of probes) {
      it(`${name} probe`, async () => {
        const probe = gateway[field] as Probe | undefined;
        expect(probe?.httpGet?.path, `${name} probe path`).toMatch(/^\//);
        expect(containerPort(probe?.httpGet?.port), `${name} probe port`).toBe(podConfig().port);
        const response = await fetch(`http://127.0.0.1:${port}${probe?.httpGet?.path ?? ""}`);
        expect(response.status).toBe(200);
      });
    }

    it("readiness is /readyz and liveness /healthz", () => {
      expect(gateway.readinessProbe?.httpGet?.path).toBe("/readyz");
      expect(gateway.livenessProbe?.httpGet?.path).toBe("/healthz");
    });

    it("ServiceMonitor scrapes /metrics through the Service's port", async () => {
      const servicePort = service.spec.ports.find((candidate) => candidate.name === serviceMonitor.spec.endpoints[0]?.port);
      expect(servicePort, "ServiceMonitor endpoint names a Service port").toBeDefined();
      expect(containerPort(servicePort?.targetPort)).toBe(podConfig().port);
      expect(matches(serviceMonitor.spec.selector.matchLabels, (only<{ metadata: { labels: Record<string, string> } }>("Service", "realtime-gateway")).metadata.labels)).toBe(true);
      const response = await fetch(`http://127.0.0.1:${port}${serviceMonitor.spec.endpoints[0]?.path ?? ""}`);
      expect(response.status).toBe(200);
      // The series the autoscaler counts (HPA metric, KEDA query, adapter rule).
      expect(await response.text()).toMatch(new RegExp(`^gateway_connections\\{transport="ws",node="probe-test"\\} 0$`, "m"));
    });
  });

  it("listen on the port every other object points at", () => {
    const port = podConfig().port;
    expect(gateway.ports?.map((candidate) => candidate.containerPort)).toEqual([port]);
    const policy = only<{ spec: { ingress: Array<{ ports: Array<{ port: string | number }> }> } }>("NetworkPolicy", "realtime-gateway");
    for (const rule of policy.spec.ingress) for (const allowed of rule.ports) expect(containerPort(allowed.port)).toBe(port);
    for (const ingress of ingresses) {
      for (const rule of ingress.spec.rules) {
        for (const route of rule.http.paths) {
          expect(route.backend.service.name, `${ingress.metadata.name} ${route.path}`).toBe(service.metadata.name);
          expect(service.spec.ports.some((candidate) => candidate.name === route.backend.service.port.name)).toBe(true);
        }
      }
    }
  });

  it("are selected by every object that means them", () => {
    expect(matches(deployment.spec.selector.matchLabels, podLabels)).toBe(true);
    expect(matches(service.spec.selector, podLabels)).toBe(true);
    const pdb = only<{ spec: { maxUnavailable?: number; selector: { matchLabels: Record<string, string> } } }>("PodDisruptionBudget", "realtime-gateway");
    expect(matches(pdb.spec.selector.matchLabels, podLabels)).toBe(true);
    expect(pdb.spec.maxUnavailable).toBe(1);
    const policy = only<{ spec: { podSelector: { matchLabels: Record<string, string> } } }>("NetworkPolicy", "realtime-gateway");
    expect(matches(policy.spec.podSelector.matchLabels, podLabels)).toBe(true);
    expect(podSpec.topologySpreadConstraints?.length).toBeGreaterThan(0);
    for (const constraint of podSpec.topologySpreadConstraints ?? []) expect(matches(constraint.labelSelector?.matchLabels, podLabels)).toBe(true);
    expect(hpa.spec.scaleTargetRef).toMatchObject({ kind: "Deployment", name: deployment.metadata.name });
    expect(scaledObject.spec.scaleTargetRef.name).toBe(deployment.metadata.name);
    expect(podSpec.serviceAccountName).toBe(only<{ metadata: { name: string } }>("ServiceAccount").metadata.name);
  });

  it("get longer to stop than the node's own bound on its drain, and drain one at a time", () => {
    const drainSeconds = podConfig().drainWindowMs / 1000;
    const preStop = preStopSeconds();
    const nodeBound = preStop + drainSeconds + SHUTDOWN_WATCHDOG_MARGIN_MS / 1000;
    expect(podSpec.terminationGracePeriodSeconds, `grace period > preStop ${preStop} s + drain ${drainSeconds} s + watchdog margin`).toBeGreaterThan(nodeBound);
    // A rolling update replaces the next pod only after the previous one has drained.
    expect(deployment.spec.strategy?.rollingUpdate).toEqual({ maxSurge: 1, maxUnavailable: 0 });
    expect(deployment.spec.minReadySeconds).toBeGreaterThanOrEqual(preStop + drainSeconds);
    // The listen socket (and /healthz) is gone while draining: liveness must not kill the drain.
    const liveness = gateway.livenessProbe;
    expect((liveness?.periodSeconds ?? 10) * (liveness?.failureThreshold ?? 3)).toBeGreaterThan(nodeBound);
    expect(deployment.spec.replicas, "the autoscaler owns the replica count").toBeUndefined();
  });

  it("have memory for a full pod of the dearest connections below the memory alert", () => {
    const requests = bytes(gateway.resources?.requests?.["memory"]);
    const limit = bytes(gateway.resources?.limits?.["memory"]);
    expect(requests).toBe(limit);
    const fullPod = NODE_BASE_RSS_BYTES + capacity() * WORST_RSS_BYTES_PER_CONNECTION;
    expect(fullPod, `${capacity()} connections need ${Math.round(fullPod / 2 ** 20)} MiB`).toBeLessThanOrEqual(MEMORY_ALERT_SHARE * limit);
    const oldSpace = /--max-old-space-size=(\d+)/.exec(gateway.env?.find((variable) => variable.name === "NODE_OPTIONS")?.value ?? "");
    expect(oldSpace, "NODE_OPTIONS sets --max-old-space-size").not.toBeNull();
    expect(Number(oldSpace?.[1]) * 2 ** 20).toBeLessThan(MEMORY_ALERT_SHARE * limit);
  });

  it("run without privileges or an API token", () => {
    expect(podSpec.automountServiceAccountToken).toBe(false);
    expect(only<{ automountServiceAccountToken?: boolean }>("ServiceAccount").automountServiceAccountToken).toBe(false);
    expect(podSpec.securityContext?.runAsNonRoot).toBe(true);
    expect(gateway.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false });
  });
});

describe("autoscaling", () => {
  const target = (): number => Number(hpa.spec.metrics[0]?.pods?.target.averageValue);

  it("targets 80 % of the pod's capacity, in the HPA and in KEDA", () => {
    expect(hpa.spec.metrics).toHaveLength(1);
    expect(hpa.spec.metrics[0]).toMatchObject({ type: "Pods", pods: { metric: { name: "gateway_connections" }, target: { type: "AverageValue" } } });
    expect(target()).toBe(TARGET_SHARE_OF_CAPACITY * capacity());
    const trigger = scaledObject.spec.triggers[0];
    expect(scaledObject.spec.triggers).toHaveLength(1);
    expect(trigger).toMatchObject({ type: "prometheus", metricType: "AverageValue" });
    expect(Number(trigger?.metadata["threshold"])).toBe(target());
  });

  it("docs/operations.md quotes the same capacity and target", () => {
    for (const figure of [capacity(), target()]) {
      const quoted = `${figure.toLocaleString("en-US")} connections`;
      expect(operationsDoc.includes(quoted), `docs/operations.md says "${quoted}"`).toBe(true);
    }
  });

  it("count the gateway's connections under the labels Prometheus gives them", () => {
    const job = serviceMonitor.spec.endpoints[0]?.relabelings?.find((relabel) => relabel.targetLabel === "job")?.replacement;
    expect(job).toBe("gateway");
    // The alert rules and dashboards select the gateway's series by this job.
    expect(readFileSync(path.join(root, "prometheus", "rules", "gateway-alerts.yml"), "utf8")).toContain(`up{job="${job}"}`);
    const query = scaledObject.spec.triggers[0]?.metadata["query"] ?? "";
    expect(query).toMatch(new RegExp(`^sum\\(gateway_connections\\{job="${job}", namespace="realtime-gateway"\\}\\)$`));

    const adapter = only<{ data: Record<string, string> }>("ConfigMap", "realtime-gateway-adapter-rules");
    const [rulesDoc] = parseYaml(adapter.data["config.yaml"] ?? "", "prometheus-adapter config.yaml");
    const rules = (rulesDoc?.body["rules"] ?? []) as Array<{ seriesQuery: string; name: { as: string }; resources: { overrides: Record<string, { resource: string }> }; metricsQuery: string }>;
    const rule = rules.find((candidate) => candidate.name.as === hpa.spec.metrics[0]?.pods?.metric.name);
    expect(rule, "an adapter rule serves the HPA's metric").toBeDefined();
    expect(rule?.seriesQuery).toContain(`gateway_connections{job="${job}"`);
    expect(rule?.resources.overrides).toEqual({ namespace: { resource: "namespace" }, pod: { resource: "pod" } });
    expect(rule?.metricsQuery).toMatch(/^sum\(/);
  });

  it("scales down one drained pod at a time, slowly, and the same way in both", () => {
    const drainSeconds = podConfig().drainWindowMs / 1000 + preStopSeconds();
    expect(scaledObject.spec.advanced.horizontalPodAutoscalerConfig.behavior).toEqual(hpa.spec.behavior);
    expect([scaledObject.spec.minReplicaCount, scaledObject.spec.maxReplicaCount]).toEqual([hpa.spec.minReplicas, hpa.spec.maxReplicas]);
    const down = hpa.spec.behavior.scaleDown;
    expect(down?.stabilizationWindowSeconds).toBeGreaterThanOrEqual(300);
    expect(down?.policies?.length).toBeGreaterThan(0);
    for (const policy of down?.policies ?? []) {
      expect(policy).toMatchObject({ type: "Pods", value: 1 });
      expect(policy.periodSeconds).toBeGreaterThan(drainSeconds);
    }
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(3);
  });

  it("keeps every pod's Postgres pool within Postgres' default connection limit at full scale", () => {
    const pool = podConfig().postgres?.poolMax;
    expect(pool).toBeDefined();
    expect((pool ?? 0) * hpa.spec.maxReplicas).toBeLessThanOrEqual(POSTGRES_DEFAULT_MAX_CONNECTIONS);
  });
});

describe("ingress", () => {
  const paths = ingresses.flatMap((ingress) => ingress.spec.rules.flatMap((rule) => rule.http.paths.map((route) => ({ ingress, route }))));

  it("publishes the client endpoints and never /metrics", () => {
    const routed = paths.map(({ route }) => `${route.pathType} ${route.path}`);
    expect(routed).toEqual(expect.arrayContaining(["Exact /ws", "Prefix /socket.io/", "Prefix /v1/"]));
    for (const { route } of paths) {
      // A Prefix route matching /metrics, /readyz or /healthz would publish them.
      for (const internal of ["/metrics", "/readyz", "/healthz"]) {
        const exposes = route.pathType === "Exact" ? route.path === internal : internal.startsWith(route.path);
        expect(exposes, `${route.pathType} ${route.path} routes ${internal}`).toBe(false);
      }
    }
  });

  it("keeps Socket.IO sessions on one pod by cookie, and only there", () => {
    const socketIo = paths.filter(({ route }) => route.path === "/socket.io/").map(({ ingress }) => ingress);
    expect(socketIo).toHaveLength(1);
    const annotations = socketIo[0]?.metadata.annotations ?? {};
    expect(annotations["nginx.ingress.kubernetes.io/affinity"]).toBe("cookie");
    expect(annotations["nginx.ingress.kubernetes.io/affinity-mode"]).toBe("persistent");
    // gw_node is the gateway's own cookie, which nginx/nginx.conf routes by.
    expect(annotations["nginx.ingress.kubernetes.io/session-cookie-name"]).toMatch(/^(?!gw_node$)[a-z_]+$/);
    for (const ingress of ingresses.filter((candidate) => !socketIo.includes(candidate))) {
      expect(ingress.metadata.annotations?.["nginx.ingress.kubernetes.io/affinity"], ingress.metadata.name).toBeUndefined();
    }
  });

  it("lets idle sockets live longer than the gateway's idle timeout", () => {
    const idle = podConfig().idleTimeoutSeconds;
    for (const ingress of ingresses) {
      for (const key of ["proxy-read-timeout", "proxy-send-timeout"]) {
        expect(Number(ingress.metadata.annotations?.[`nginx.ingress.kubernetes.io/${key}`]), `${ingress.metadata.name} ${key}`).toBeGreaterThan(idle);
      }
    }
  });
});
