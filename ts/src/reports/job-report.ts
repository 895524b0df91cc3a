/**
 * The report a training job writes when it ends (the client hands this to jobs/job.ts as its
 * `AfterJob`): `<runDir>/report.html`, with the worker's capabilities as its environment. A report is a
 * by-product, so this never throws: a failure is logged as a warning (the client's `logger`) and the
 * job's result simply has no `report`.
 */
import type { Rpc } from '../internal/rpc.js';
import { writeRunReport } from './write.js';

/** Writes the run's report; resolves with its path, or `undefined` when it could not be written. */
export async function reportAfterJob(rpc: Rpc, runDir: string): Promise<string | undefined> {
  try {
    const startup = rpc.workerStartupMs;
    const path = await writeRunReport(runDir, { environment: rpc.capabilities, ...(startup === undefined ? {} : { workerStartupS: startup / 1000 }) });
    rpc.log('debug', `run report written: ${path}`);
    return path;
  } catch (error) {
    try {
      rpc.log('warn', `could not write the run report in ${runDir}: ${(error as Error).message}`);
    } catch {
      // a logger that throws must not fail the job either
    }
    return undefined;
  }
}
