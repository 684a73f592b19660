// Feature flags over OFREP (the OpenFeature Remote Evaluation Protocol), plain Node. The local driver sets
// MERIDIAN_OFREP_URL. The client polls the bulk evaluation endpoint with If-None-Match (an unchanged answer
// is a bodiless 304), with the service's region and cluster in the evaluation context. A request's user
// (the targetingKey) gets an evaluation of its own, cached for one polling interval, so that a flag on for
// a share of users splits them as Meridian's router does. When the endpoint cannot be reached the last
// answer stays in use; before its first answer, the defaults the service declares.

const BULK_PATH = '/ofrep/v1/evaluate/flags';
const MAX_USERS = 1000; // cached user evaluations; the oldest goes first
const USER_INTERVALS = 10; // a user's evaluation is revalidated every 10 polling intervals (5 s by default)

/**
 * `defaults`: flag → value, the flags the service reads (others are ignored). `context`: the evaluation
 * context (region, cluster, …). Returns `{ flags(targetingKey?) → Promise<values>, stop() }`.
 */
export function flagClient({ url, defaults, context, intervalMs = 500, timeoutMs = 2000, startGraceMs = 10_000, log = () => {} }) {
  if (!url) {
    log('flags: MERIDIAN_OFREP_URL is not set; the flags keep their defaults');
    return { flags: async () => ({ ...defaults }), stop: () => {} };
  }
  const u = new URL(url);
  if (!u.pathname.endsWith(BULK_PATH)) u.pathname = `${u.pathname.replace(/\/+$/, '')}${BULK_PATH}`;
  const bulk = u.toString();
  const regional = entry(context);
  const users = new Map(); // targetingKey → entry
  let failing = false; // a failure was logged and no answer came since
  let answered = false;
  const started = Date.now();

  function entry(ctx) {
    return { ctx, etag: null, values: null, at: 0, pending: null };
  }

  // One bulk evaluation for an entry's context; a failure keeps what the entry had.
  function refresh(e) {
    e.pending ??= (async () => {
      try {
        const res = await fetch(bulk, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...(e.etag ? { 'if-none-match': e.etag } : {}) },
          body: JSON.stringify({ context: e.ctx }),
          signal: AbortSignal.timeout(timeoutMs),
        });
        if (res.status === 200) {
          e.values = valuesOf(await res.json());
          e.etag = res.headers.get('etag');
        } else if (res.status !== 304) {
          throw new Error(`HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`);
        }
        if (failing) log(`flags: ${bulk} answers again`);
        failing = false;
        answered = true;
      } catch (err) {
        // while a whole fleet starts, a slow first answer is expected: quiet for `startGraceMs`, unless
        // nothing listens there at all (a wrong URL, worth saying at once)
        const code = err.cause?.code;
        const starting = !answered && Date.now() - started < startGraceMs && code !== 'ECONNREFUSED';
        if (!failing && !starting) {
          log(`flags: no usable answer from ${bulk} (${code ?? err.message}); keeping the ${e.values ? 'last known values' : 'defaults'}`);
          failing = true;
        }
      } finally {
        e.at = Date.now();
        e.pending = null;
      }
    })();
    return e.pending;
  }

  // The answer's boolean values for the flags the service reads. A flag that failed to evaluate (e.g. on
  // for a share of users, asked without a user) is left out: its default answers.
  function valuesOf(body) {
    const values = {};
    for (const f of Array.isArray(body?.flags) ? body.flags : []) {
      if (Object.hasOwn(defaults, f?.key) && typeof f.value === 'boolean') values[f.key] = f.value;
    }
    return values;
  }

  let timer = null;
  let running = true;
  const loop = () =>
    void refresh(regional).finally(() => {
      if (running) timer = setTimeout(loop, intervalMs).unref();
    });
  loop();

  return {
    /** The flag values for this service, for a request's user when given. */
    async flags(targetingKey) {
      let e = regional;
      if (targetingKey) {
        e = users.get(targetingKey);
        if (!e) {
          e = entry({ ...context, targetingKey });
          users.set(targetingKey, e);
          if (users.size > MAX_USERS) users.delete(users.keys().next().value);
          if (!failing)
            await refresh(e); // a new user waits for its first answer, unless OFREP is down
          else void refresh(e);
        } else if (Date.now() - e.at >= intervalMs * USER_INTERVALS) {
          void refresh(e); // revalidated in the background; this request gets the cached values
        }
      }
      // a value the region's evaluation has is the same for every user there (a flag on or off for the
      // whole region, a kill switch): it wins over a user's cached one, so a user's answer can be less
      // fresh only for flags that are on for a share of the region's users
      return { ...defaults, ...e.values, ...regional.values };
    },
    stop() {
      running = false;
      clearTimeout(timer);
    },
  };
}
