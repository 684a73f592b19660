/**
 * Runs a data migration's `up` or `down` as a child process (the {@link MigrationRunner} port): in the
 * fleet directory, with the environment a replica of the service gets in that region (inherited basics,
 * the rendered `env` and `config`, resolved secrets) plus MERIDIAN_REGION, MERIDIAN_SERVICE,
 * MERIDIAN_MIGRATION, MERIDIAN_DIRECTION and MERIDIAN_ROLLOUT; killed (its whole process group) at its
 * timeout. What it writes is kept, its end only, with secret values masked.
 */
import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { DEFAULT_INHERITED_ENV } from '../targets/local/local-options.js';
import { SecretResolver } from '../targets/local/secret-resolver.js';
import type { MigrationRequest, MigrationResult, MigrationRunner } from './ports.js';

/** How much of a run's output is kept (its end). */
export const MIGRATION_OUTPUT_LIMIT = 4000;

export interface ProcessMigrationRunnerOptions {
  /** Where inherited variables and `env:` secrets come from (default `process.env`). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** The working directory when the request names none (default the current one). */
  readonly dir?: string;
}

/** Runs migrations as child processes. */
export class ProcessMigrationRunner implements MigrationRunner {
  readonly #env: Readonly<Record<string, string | undefined>>;
  readonly #dir: string;

  constructor(opts: ProcessMigrationRunnerOptions = {}) {
    this.#env = opts.env ?? process.env;
    this.#dir = opts.dir ?? process.cwd();
  }

  run(req: MigrationRequest): Promise<MigrationResult> {
    const started = Date.now();
    const { run } = req;
    const dir = resolve(req.dir ?? this.#dir);
    const env: Record<string, string> = {};
    for (const k of DEFAULT_INHERITED_ENV) {
      const v = this.#env[k];
      if (v !== undefined) env[k] = v;
    }
    const masks: string[] = [];
    try {
      Object.assign(env, run.env);
      const secrets = new SecretResolver({ fleetDir: dir, env: this.#env }).resolveAll(run.secrets, {
        cluster: run.cluster,
        service: run.service,
      });
      for (const [k, v] of secrets) {
        env[k] = v.reveal();
        masks.push(v.reveal());
      }
    } catch (err) {
      return Promise.resolve({ ok: false, exitCode: null, durationMs: Date.now() - started, output: '', error: (err as Error).message });
    }
    Object.assign(env, {
      MERIDIAN_FLEET: req.fleet,
      MERIDIAN_REGION: run.region,
      MERIDIAN_SERVICE: run.service,
      MERIDIAN_MIGRATION: run.name,
      MERIDIAN_DIRECTION: req.direction,
      MERIDIAN_ROLLOUT: req.rolloutId,
    });
    const command = req.direction === 'up' ? run.up : run.down;
    const [file, ...args] = typeof command === 'string' ? ['/bin/sh', '-c', command] : [...command];
    return new Promise((done) => {
      let output = '';
      let error: string | undefined;
      const keep = (chunk: Buffer): void => {
        output = (output + chunk.toString()).slice(-2 * MIGRATION_OUTPUT_LIMIT);
      };
      const child = spawn(file ?? '/bin/sh', args, { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      const timer = setTimeout(() => {
        error = `timed out after ${Math.round(run.timeoutMs / 100) / 10} s and was killed`;
        try {
          if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      }, run.timeoutMs);
      child.on('error', (err) => {
        error = `could not run ${file}: ${err.message}`;
      });
      child.on('close', (code) => {
        clearTimeout(timer);
        let text = output;
        for (const m of masks) if (m.length >= 3) text = text.split(m).join('[secret]');
        const result: MigrationResult = {
          ok: code === 0 && error === undefined,
          exitCode: code,
          durationMs: Date.now() - started,
          output: text.slice(-MIGRATION_OUTPUT_LIMIT),
          ...(error !== undefined ? { error } : {}),
        };
        done(result);
      });
    });
  }
}
