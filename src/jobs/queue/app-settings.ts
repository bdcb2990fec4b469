/**
 * The app's settings (tenant, client id, credential) a worker started with,
 * or why it has none. A worker for `imaps://` migrations needs none, so a
 * worker starts without them and only the jobs that need them fail, each
 * with QUEUE_WORKER_SETTINGS_MISSING, instead of the worker refusing to run.
 */
import type { MailbridgeConfig } from '../../config/types.js';
import { ConfigurationError } from '../../errors.js';

export type WorkerAppSettings = MailbridgeConfig | ConfigurationError;

/** The settings, or the job's failure naming what the worker lacks. */
export function appSettingsFor(settings: WorkerAppSettings, doing: string): MailbridgeConfig {
  if (!(settings instanceof ConfigurationError)) return settings;
  const problem = settings;
  throw new ConfigurationError({
    code: 'QUEUE_WORKER_SETTINGS_MISSING',
    message: `${doing} needs the app's settings, and this worker started without them (${problem.code}: ${problem.message})`,
    remedy:
      "Give the worker the app's settings as for `mailbridge archive` (environment or --config), restart it, then `mailbridge jobs retry --run ID --failed`.",
    cause: problem,
  });
}
