import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { parseAllDocuments, parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PATHS } from '../../src/http/server.js';
import { parseConfigText } from '../../src/config/load.js';

// deploy/kubernetes must stay true to the code: probe paths and ports are the daemon's, the
// config passes `pg-reaper check`, the password file is where the config reads it, the alert
// rules are the tested ones, and names, labels and image agree. The config reaches the pods: the
// ConfigMap is generated with a hash suffix (the Deployment rolls on change) and mounted as a
// directory (the kubelet updates it in place, watchConfig reloads it). Where kubectl is installed,
// the kustomization is rendered for real.

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const ROOT = join(import.meta.dirname, '../..');
const K8S = join(ROOT, 'deploy/kubernetes');
const CLI = join(ROOT, 'dist/pg-reaper/cli.js');
const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const load = (file: string): Doc[] => parseAllDocuments(readFileSync(join(K8S, file), 'utf8')).map((d) => d.toJS() as Doc);
const one = (file: string, kind: string) => load(file).find((d) => d.kind === kind)!;
const kustomization = () => parse(readFileSync(join(K8S, 'kustomization.yaml'), 'utf8')) as Doc;
/** The ConfigMap that kustomization.yaml generates (before kustomize appends the hash). */
function generatedConfigMap(): Doc {
  const generators = kustomization().configMapGenerator as Doc[];
  expect(generators).toHaveLength(1);
  const files = generators[0]!.files as string[];
  return { metadata: { name: generators[0]!.name }, data: Object.fromEntries(files.map((f) => [basename(f), readFileSync(join(K8S, f), 'utf8')])) };
}
/** Where the image reads its config (ENV PG_REAPER_CONFIG in the Dockerfile). */
const imageConfigPath = () => /PG_REAPER_CONFIG=(\S+)/.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))![1]!;
const hasKubectl = spawnSync('kubectl', ['version', '--client'], { stdio: 'ignore' }).status === 0;
/** `kubectl kustomize DIR`: the documents `kubectl apply -k DIR` would send. */
const kustomize = (path: string) => parseAllDocuments(execFileSync('kubectl', ['kustomize', path], { encoding: 'utf8' })).map((d) => d.toJS() as Doc);
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pg-reaper-deploy-test-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `pg-reaper check` on a config from a manifest: exit code and output. */
function check(configYaml: string): { code: number; out: string } {
  const file = join(dir, 'config.yaml');
  // the Secret is not mounted here, and check reads the password file: point it at a stand-in
  writeFileSync(join(dir, 'password'), 'stand-in\n');
  writeFileSync(file, configYaml.replace(/(passwordFile:\s*)\S+/g, (_, key: string) => `${key}${join(dir, 'password')}`));
  try {
    return { code: 0, out: execFileSync(process.execPath, [CLI, 'check', '-c', file], { encoding: 'utf8' }) };
  } catch (err) {
    const e = err as { status: number; stdout: string; stderr: string };
    return { code: e.status, out: e.stdout + e.stderr };
  }
}

/** The checks every pg-reaper container gets, in the Deployment and in the sidecar. */
function checkContainer(c: Doc, volumes: Doc[], configMap: Doc, secretName: string): void {
  const configText = configMap.data['config.yaml'] as string;
  const r = parseConfigText(configText, 'configmap', {});
  if (!r.ok) throw new Error(`the ConfigMap's config is rejected: ${JSON.stringify(r.problems)}`);
  const config = r.config;
  expect(check(configText)).toMatchObject({ code: 0 });
  // probes and ports: the daemon's real paths, on the port the config listens on
  const port = c.ports[0];
  expect(port.containerPort).toBe(config.http.port);
  expect(c.livenessProbe.httpGet).toEqual({ path: PATHS.live, port: port.name });
  expect(c.readinessProbe.httpGet).toEqual({ path: PATHS.ready, port: port.name });
  // the config file where the image reads it, the password file where the config reads it; whole
  // directories, never subPath (the kubelet never updates a subPath mount)
  const mounts = c.volumeMounts as Doc[];
  expect(mounts.filter((m) => 'subPath' in m || 'subPathExpr' in m)).toEqual([]);
  const configMount = mounts.find((m) => volumes.find((v) => v.name === m.name)?.configMap?.name === configMap.metadata.name)!;
  expect(configMount).toMatchObject({ mountPath: dirname(imageConfigPath()), readOnly: true });
  expect(Object.keys(configMap.data)).toEqual([basename(imageConfigPath())]);
  expect(config.watchConfig).toBe(true);
  const secretMount = mounts.find((m) => volumes.find((v) => v.name === m.name)?.secret?.secretName === secretName)!;
  expect(config.targets.map((t) => t.passwordFile)).toEqual(config.targets.map(() => `${secretMount.mountPath}/password`));
  // image and least privilege
  expect(c.image).toBe(`pg-reaper:${version}`);
  expect(c.args).toEqual(['run']);
  expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
}

describe('deploy/kubernetes', () => {
  it('the Deployment: two coordinated replicas, real probes, the ConfigMap config passes check, the Secret where passwordFile points', () => {
    const deployment = one('deployment.yaml', 'Deployment');
    const configMap = generatedConfigMap();
    const secret = one('secret-example.yaml', 'Secret');
    expect(deployment.spec.replicas).toBe(2);
    const config = parseConfigText(configMap.data['config.yaml'] as string, 'configmap', {});
    expect(config.ok && config.config.coordination.mode).toBe('advisory-lock');
    const pod = deployment.spec.template.spec;
    expect(pod.containers).toHaveLength(1);
    checkContainer(pod.containers[0], pod.volumes, configMap, secret.metadata.name);
    expect(Object.keys(secret.stringData)).toEqual(['password']);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000, seccompProfile: { type: 'RuntimeDefault' } });
    // SIGTERM waits up to shutdownTimeout (default 10 s) for runs in flight: the pod must allow it
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(10);
  });

  it('resources come from the measured footprint: the memory limit is above the peak RSS measured for one target', () => {
    const c = one('deployment.yaml', 'Deployment').spec.template.spec.containers[0];
    const mi = (q: string) => Number(q.replace(/Mi$/, ''));
    const footprint = JSON.parse(readFileSync(join(ROOT, 'bench/results/footprint.json'), 'utf8')) as { byNode: { oneTarget: { rssMiB: { peak: number } } }[] };
    const peak = Math.max(...footprint.byNode.map((n) => n.oneTarget.rssMiB.peak));
    expect(mi(c.resources.requests.memory)).toBeGreaterThanOrEqual(peak);
    expect(mi(c.resources.limits.memory)).toBeGreaterThanOrEqual(1.5 * peak);
  });

  it('labels and selectors agree across Deployment, PodDisruptionBudget, Service and ServiceMonitor; the version label is the package version', () => {
    const deployment = one('deployment.yaml', 'Deployment');
    const labels = deployment.spec.template.metadata.labels;
    expect(labels['app.kubernetes.io/version']).toBe(version);
    const selects = (sel: Record<string, string>) => Object.entries(sel).every(([k, v]) => labels[k] === v);
    expect(selects(deployment.spec.selector.matchLabels)).toBe(true);
    expect(selects(one('pdb.yaml', 'PodDisruptionBudget').spec.selector.matchLabels)).toBe(true);
    const service = one('service.yaml', 'Service');
    expect(selects(service.spec.selector)).toBe(true);
    expect(service.spec.ports[0].targetPort).toBe(deployment.spec.template.spec.containers[0].ports[0].name);
    const monitor = one('servicemonitor.yaml', 'ServiceMonitor');
    expect(Object.entries(monitor.spec.selector.matchLabels).every(([k, v]) => service.metadata.labels[k] === v)).toBe(true);
    expect(monitor.spec.endpoints[0]).toMatchObject({ port: service.spec.ports[0].name, path: PATHS.metrics });
    expect(parse(readFileSync(join(K8S, 'kustomization.yaml'), 'utf8')).images).toEqual([{ name: 'pg-reaper', newTag: version }]);
  });

  it('the PrometheusRule holds exactly the groups of deploy/prometheus/pg-reaper.rules.yaml (npm run deploy:rules)', () => {
    const rules = parse(readFileSync(join(ROOT, 'deploy/prometheus/pg-reaper.rules.yaml'), 'utf8')) as Doc;
    expect(one('prometheusrule.yaml', 'PrometheusRule').spec.groups).toEqual(rules.groups);
  });

  it('kustomization.yaml lists every manifest but the examples and the config it generates the ConfigMap from', () => {
    const listed = (kustomization().resources as string[]).sort();
    const files = readdirSync(K8S).filter((f) => f.endsWith('.yaml') && !['kustomization.yaml', 'config.yaml'].includes(f) && !f.endsWith('-example.yaml')).sort();
    expect(listed).toEqual(files);
  });

  it('the ConfigMap is generated with a hash suffix (the Deployment rolls on change); the Secret is not applied', () => {
    const k = kustomization();
    expect(k.configMapGenerator).toEqual([{ name: 'pg-reaper-config', files: ['config.yaml'], options: { labels: { 'app.kubernetes.io/name': 'pg-reaper' } } }]);
    expect(k.generatorOptions?.disableNameSuffixHash).toBeUndefined();
    expect(k.secretGenerator).toBeUndefined();
    expect((k.resources as string[]).filter((r) => /secret/i.test(r))).toEqual([]);
    const volumes = one('deployment.yaml', 'Deployment').spec.template.spec.volumes as Doc[];
    expect(volumes.map((v) => v.configMap?.name).filter(Boolean)).toEqual(['pg-reaper-config']);
  });

  it.skipIf(!hasKubectl)('kubectl kustomize: the ConfigMap name carries the hash of config.yaml, the Deployment uses it, a change renames it, and no Secret is sent', () => {
    const docs = kustomize(K8S);
    const configMaps = docs.filter((d) => d.kind === 'ConfigMap');
    expect(configMaps.map((d) => d.metadata.name)).toEqual([expect.stringMatching(/^pg-reaper-config-[a-z0-9]{10}$/)]);
    const name = configMaps[0]!.metadata.name as string;
    const deployment = docs.find((d) => d.kind === 'Deployment')!;
    expect(deployment.spec.template.spec.volumes.find((v: Doc) => v.configMap)?.configMap.name).toBe(name);
    expect(docs.filter((d) => d.kind === 'Secret')).toEqual([]);
    expect(docs.map((d) => d.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'NetworkPolicy', 'PodDisruptionBudget', 'PrometheusRule', 'Service', 'ServiceMonitor']);
    // a new config is a new ConfigMap name in the pod template: the Deployment rolls
    const copy = join(dir, 'kustomize-copy');
    cpSync(K8S, copy, { recursive: true });
    writeFileSync(join(copy, 'config.yaml'), readFileSync(join(K8S, 'config.yaml'), 'utf8').replace('maxIdle: 10m', 'maxIdle: 15m'));
    const changed = kustomize(copy).find((d) => d.kind === 'Deployment')!.spec.template.spec.volumes.find((v: Doc) => v.configMap)?.configMap.name as string;
    expect(changed).toMatch(/^pg-reaper-config-[a-z0-9]{10}$/);
    expect(changed).not.toBe(name);
    rmSync(copy, { recursive: true });
  });

  it.skipIf(!hasKubectl)('the release label patch that kustomization.yaml documents for kube-prometheus-stack labels the ServiceMonitor and the PrometheusRule', () => {
    const copy = join(dir, 'kustomize-release');
    cpSync(K8S, copy, { recursive: true });
    const text = readFileSync(join(K8S, 'kustomization.yaml'), 'utf8');
    const start = text.indexOf('# patches:');
    expect(start).toBeGreaterThan(0);
    writeFileSync(join(copy, 'kustomization.yaml'), text.slice(0, start) + text.slice(start).replace(/^# ?/gm, ''));
    const docs = kustomize(copy);
    for (const kind of ['ServiceMonitor', 'PrometheusRule']) expect(docs.find((d) => d.kind === kind)!.metadata.labels).toMatchObject({ release: 'kube-prometheus-stack' });
    expect(docs.find((d) => d.kind === 'Deployment')!.metadata.labels.release).toBeUndefined();
    rmSync(copy, { recursive: true });
  });

  it('the replicas are spread over nodes (required) and zones (preferred), counting the pods of one rollout only', () => {
    const pod = one('deployment.yaml', 'Deployment').spec.template;
    const spread = pod.spec.topologySpreadConstraints as Doc[];
    const selects = (c: Doc) => Object.entries(c.labelSelector.matchLabels as Record<string, string>).every(([k, v]) => pod.metadata.labels[k] === v);
    const byKey = Object.fromEntries(spread.map((c) => [c.topologyKey, c]));
    expect(byKey['kubernetes.io/hostname']).toMatchObject({ maxSkew: 1, whenUnsatisfiable: 'DoNotSchedule', matchLabelKeys: ['pod-template-hash'] });
    expect(byKey['topology.kubernetes.io/zone']).toMatchObject({ maxSkew: 1, whenUnsatisfiable: 'ScheduleAnyway' });
    expect(spread.every(selects)).toBe(true);
  });

  it('the NetworkPolicy lets in the scrape on the metrics port only, and out the database port of each target and DNS only', () => {
    const policy = one('networkpolicy.yaml', 'NetworkPolicy');
    const deployment = one('deployment.yaml', 'Deployment');
    const labels = deployment.spec.template.metadata.labels;
    expect(Object.entries(policy.spec.podSelector.matchLabels).every(([k, v]) => labels[k] === v)).toBe(true);
    expect(policy.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    // in: one rule, the container's metrics port, from Prometheus pods only
    const port = deployment.spec.template.spec.containers[0].ports[0];
    expect(policy.spec.ingress).toHaveLength(1);
    expect(policy.spec.ingress[0].ports).toEqual([{ protocol: 'TCP', port: port.name }]);
    expect(policy.spec.ingress[0].from).toEqual([{ namespaceSelector: expect.any(Object), podSelector: { matchLabels: { 'app.kubernetes.io/name': 'prometheus' } } }]);
    // out: each target's port in the namespace its service name is in, and the cluster DNS
    const r = parseConfigText(generatedConfigMap().data['config.yaml'] as string, 'config.yaml', {});
    if (!r.ok) throw new Error(JSON.stringify(r.problems));
    const egress = policy.spec.egress as Doc[];
    expect(egress).toHaveLength(2);
    for (const t of r.config.targets) {
      const namespace = /^[^.]+\.([^.]+)\.svc(\.|$)/.exec(t.host!)?.[1];
      expect(egress[0]).toEqual({ to: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } } }], ports: [{ protocol: 'TCP', port: t.port }] });
    }
    expect(egress[1]!.to).toEqual([{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } }, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }]);
    expect(egress[1]!.ports).toEqual([{ protocol: 'UDP', port: 53 }, { protocol: 'TCP', port: 53 }]);
  });

  it('the native sidecar: an initContainers entry with restartPolicy Always beside PostgreSQL, reaching it on localhost', () => {
    const docs = load('sidecar-example.yaml');
    const pod = docs.find((d) => d.kind === 'Pod')!;
    const configMap = docs.find((d) => d.kind === 'ConfigMap')!;
    const sidecar = pod.spec.initContainers[0];
    expect(sidecar.restartPolicy).toBe('Always');
    expect(pod.spec.containers.map((c: Doc) => c.name)).toEqual(['postgres']);
    checkContainer(sidecar, pod.spec.volumes, configMap, one('secret-example.yaml', 'Secret').metadata.name);
    const config = parseConfigText(configMap.data['config.yaml'] as string, 'sidecar', {});
    expect(config.ok && config.config.targets.map((t) => [t.host, t.port])).toEqual([['127.0.0.1', pod.spec.containers[0].ports[0].containerPort]]);
  });
});

describe('the runbook and the image', () => {
  it('every alert links to a section of docs/operations.md that exists', () => {
    const rules = parse(readFileSync(join(ROOT, 'deploy/prometheus/pg-reaper.rules.yaml'), 'utf8')) as Doc;
    const doc = readFileSync(join(ROOT, 'docs/operations.md'), 'utf8');
    const anchors = new Set([...doc.matchAll(/^#+ (.+)$/gm)].map((m) => m[1]!.toLowerCase().replace(/[^a-z0-9 -]/g, '').replace(/ /g, '-')));
    for (const r of rules.groups.flatMap((g: Doc) => g.rules) as Doc[]) {
      const anchor = /#(.+)$/.exec(r.annotations.runbook_url as string)![1]!;
      expect(anchors, `${r.alert} → #${anchor}`).toContain(anchor);
      expect(anchor).toBe((r.alert as string).toLowerCase());
    }
  });

  it('the Dockerfile: version label from package.json, the default port, a health check on /livez, node as PID 1, the node user', () => {
    const file = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    expect(/^ARG VERSION=(.+)$/m.exec(file)?.[1]).toBe(version);
    expect(file).toMatch(/^EXPOSE 9188$/m);
    expect(file).toMatch(new RegExp(`^ENV PG_REAPER_HEALTH_URL=http://127\\.0\\.0\\.1:9188${PATHS.live}$`, 'm'));
    expect(file).toMatch(/^HEALTHCHECK [\s\S]*fetch\(process\.env\.PG_REAPER_HEALTH_URL\)/m);
    expect(file).toMatch(/^USER node$/m);
    expect(file).toMatch(/^ENTRYPOINT \["node", "--max-semi-space-size=1", "\/app\/dist\/pg-reaper\/cli\.js"\]$/m);
    expect(file).toMatch(/^ENV [\s\S]*PG_REAPER_CONFIG=\/etc\/pg-reaper\/config\.yaml/m);
    expect(readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n')).toEqual(expect.arrayContaining(['node_modules', '.git', 'test', 'bench']));
  });
});
