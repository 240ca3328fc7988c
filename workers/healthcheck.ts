// A worker container's health check (Dockerfile HEALTHCHECK, compose): healthy while the worker's own metrics
// endpoint answers and shows at least one poller on its task queues, i.e. the process is up, connected to Temporal
// and polling. Exit 0 healthy, 1 not (with one line saying why). Reads only SNAPFLOW_METRICS_ADDRESS.
export async function checkWorkerHealth(address = process.env.SNAPFLOW_METRICS_ADDRESS): Promise<string> {
  if (!address) throw new Error('SNAPFLOW_METRICS_ADDRESS is not set: the health check reads the worker metrics');
  const [host, port] = address.includes(':')
    ? [address.slice(0, address.lastIndexOf(':')), address.slice(address.lastIndexOf(':') + 1)]
    : ['', address];
  const target = `http://${!host || host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${port}/metrics`;
  const res = await fetch(target, { signal: AbortSignal.timeout(3000) });
  if (!res.ok) throw new Error(`${target} answered ${res.status}`);
  const pollers = (await res.text())
    .split('\n')
    .filter((line) => line.startsWith('temporal_num_pollers'))
    .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
  if (!(pollers > 0)) throw new Error(`${target}: no poller yet (not connected to Temporal, or still starting)`);
  return `healthy: ${pollers} poller(s)`;
}

if (require.main === module) {
  checkWorkerHealth().then(
    (line) => console.log(line),
    (err: Error) => (console.error(`unhealthy: ${err.message}`), process.exit(1)),
  );
}
