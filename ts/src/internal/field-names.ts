/**
 * The worker names fields as they travel (`data.on_bad_row`, `task_options.labels`, `model.name_or_path`);
 * a TypeScript caller or a job file wrote `data.onBadRow`, `task.labels`, `model.nameOrPath`. Error
 * messages from the worker are shown with the caller's names.
 */

const camel = (snake: string): string => snake.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** Where each wire prefix lives in a job spec (`method_config` fields sit at the top level of the builder input). */
const PREFIXES: Readonly<Record<string, string>> = {
  data: 'data.',
  model: 'model.',
  training: 'training.',
  task_options: 'task.',
  method_config: '',
};

// A prefix and a snake_case field (at least one underscore: others read the same), not inside a path or a
// longer name; `task_options.` and `method_config.` are wire names whatever follows.
const PREFIXED = /(?<![\w/.-])(?:(data|model|training)\.([a-z][a-z0-9]*(?:_[a-z0-9]+)+)|(task_options|method_config)\.([a-z][a-z0-9_]*))\b/g;
// A top-level field that starts a message part: `run_dir: ...`.
const TOP_LEVEL = /(?<![\w/.-])(run_dir|resume_from|job_id)(?=:)/g;

/** `message` with the worker's field names replaced by the SDK's. */
export function userFieldNames(message: string): string {
  return message
    .replace(PREFIXED, (_, p1?: string, f1?: string, p2?: string, f2?: string) => `${PREFIXES[(p1 ?? p2)!]}${camel((f1 ?? f2)!)}`)
    .replace(TOP_LEVEL, (name: string) => camel(name));
}
