import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PATHS } from '../../src/http/server.js';
import { parseConfigText } from '../../src/config/load.js';

// deploy/kubernetes must stay true to the code: probe paths and ports are the daemon's, the
// config passes `pg-reaper check`, the password file is where the config reads it, the alert
// rules are the tested ones, and names, labels and image agree.

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const ROOT = join(import.meta.dirname, '../..');
const K8S = join(ROOT, 'deploy/kubernetes');
const CLI = join(ROOT, 'dist/pg-reaper/cli.js');
const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const load = (file: string): Doc[] => parseAllDocuments(readFileSync(join(K8S, file), 'utf8')).map((d) => d.toJS() as Doc);
const one = (file: string, kind: string) => load(file).find((d) => d.kind === kind)!;
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
  // the config file where the image reads it, the password file where the config reads it
  const mounts = c.volumeMounts as Doc[];
  const configMount = mounts.find((m) => volumes.find((v) => v.name === m.name)?.configMap?.name === configMap.metadata.name)!;
  expect(configMount).toMatchObject({ mountPath: '/etc/pg-reaper/config.yaml', subPath: 'config.yaml', readOnly: true });
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
    const configMap = one('configmap.yaml', 'ConfigMap');
    const secret = one('secret.yaml', 'Secret');
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

  it('kustomization.yaml lists every manifest but the sidecar example', () => {
    const listed = (parse(readFileSync(join(K8S, 'kustomization.yaml'), 'utf8')) as { resources: string[] }).resources.sort();
    const files = readdirSync(K8S).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml' && f !== 'sidecar-example.yaml').sort();
    expect(listed).toEqual(files);
  });

  it('the native sidecar: an initContainers entry with restartPolicy Always beside PostgreSQL, reaching it on localhost', () => {
    const docs = load('sidecar-example.yaml');
    const pod = docs.find((d) => d.kind === 'Pod')!;
    const configMap = docs.find((d) => d.kind === 'ConfigMap')!;
    const sidecar = pod.spec.initContainers[0];
    expect(sidecar.restartPolicy).toBe('Always');
    expect(pod.spec.containers.map((c: Doc) => c.name)).toEqual(['postgres']);
    checkContainer(sidecar, pod.spec.volumes, configMap, 'pg-reaper-password');
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
    expect(file).toMatch(new RegExp(`^HEALTHCHECK [\\s\\S]*127\\.0\\.0\\.1:9188${PATHS.live}`, 'm'));
    expect(file).toMatch(/^USER node$/m);
    expect(file).toMatch(/^ENTRYPOINT \["node", "--max-semi-space-size=1", "\/app\/dist\/pg-reaper\/cli\.js"\]$/m);
    expect(file).toMatch(/^ENV [\s\S]*PG_REAPER_CONFIG=\/etc\/pg-reaper\/config\.yaml/m);
    expect(readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n')).toEqual(expect.arrayContaining(['node_modules', '.git', 'test', 'bench']));
  });
});
