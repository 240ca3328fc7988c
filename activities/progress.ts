import type Docker from 'dockerode';

/** Drains a Docker progress stream; errors come inside a 200 response, so scan every event. */
export function followProgress(docker: Docker, stream: NodeJS.ReadableStream): Promise<unknown[]> {
  return new Promise((done, fail) => {
    docker.modem.followProgress(stream, (err: Error | null, events: Array<{ error?: string; errorDetail?: { message?: string } }>) => {
      if (err) return fail(err);
      const bad = events.find((e) => e.error || e.errorDetail);
      if (bad) return fail(new Error(bad.errorDetail?.message ?? bad.error));
      done(events);
    });
  });
}
