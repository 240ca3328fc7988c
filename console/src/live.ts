// Live data without reload: a page asks for what it shows, then again every second while it is open. A failed
// poll keeps the last good answer on screen and says what went wrong; the next one may recover.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';

export const POLL_MS = 1000;

export interface Live<T> {
  data?: T;
  error?: Error;
  loading: boolean;
  /** Ask again now (after a change this page made), without waiting for the next tick. */
  reload: () => void;
}

export function useLive<T>(load: (() => Promise<T>) | null, deps: unknown[], intervalMs: number = POLL_MS): Live<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<Error | undefined>(undefined);
  const [loading, setLoading] = useState(true);
  const generation = useRef(0);
  const shown = useRef<string | undefined>(undefined);
  const [kick, setKick] = useState(0);
  const key = JSON.stringify(deps);

  useEffect(() => {
    const mine = ++generation.current;
    // Other things to show (another workspace, another sandbox): the old answer goes. A reload keeps it on screen.
    if (shown.current !== key) {
      shown.current = key;
      setData(undefined);
      setError(undefined);
      setLoading(true);
    }
    if (!load) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let stopped = false;
    const tick = async (): Promise<void> => {
      try {
        const value = await load();
        if (stopped || mine !== generation.current) return;
        setData(value);
        setError(undefined);
      } catch (err) {
        if (stopped || mine !== generation.current) return;
        setError(err as Error);
      } finally {
        if (!stopped && mine === generation.current) {
          setLoading(false);
          if (intervalMs > 0) timer = setTimeout(() => void tick(), intervalMs);
        }
      }
    };
    void tick();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }, [key, kick]);

  const reload = useCallback(() => setKick((k) => k + 1), []);
  return { data, error, loading, reload };
}
