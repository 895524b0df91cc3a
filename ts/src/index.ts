/**
 * softprompt: train and use soft prompts on real language models from TypeScript, through a managed
 * PyTorch worker. This file is the whole public surface; everything else is internal.
 */
export { Softprompt } from './client.js';
export type { CallOptions } from './client.js';
export type { StartOptions, LifecycleEvent } from './core/start-options.js';
export type { ConnectOptions, ConnectKeys } from './core/connect-options.js';

export {
  SoftpromptError,
  ValidationError,
  ProtocolError,
  WorkerStartError,
  WorkerCrashedError,
  ConnectionLostError,
  TimeoutError,
  AbortError,
  RemoteError,
  ClientClosedError,
} from './core/errors.js';
export type { SoftpromptErrorCode, RemoteErrorCode, LocalErrorCode } from './core/errors.js';

export { EventStream } from './core/event-stream.js';
export type { StreamController } from './core/event-stream.js';

export {
  tensor,
  DTYPES,
  itemSize,
  numel,
  bf16ToFloat32,
  float32ToBf16,
  f16ToFloat32,
  float32ToF16,
} from './core/tensor.js';
export type { Tensor, TensorMap, DTypeName, TensorArrayMap } from './core/tensor.js';

export type { Capabilities, GpuInfo } from './core/capabilities.js';
export type { WorkerHealth } from './core/health.js';
export type { BatchingStatus, JobStatus, LoadedModel, MergedCounts, WorkerStatus } from './core/status.js';
export type { Logger, LogFunction, LogLevel } from './core/logger.js';

export type { ModelSpec, PretrainedModelSpec, TinyModelSpec, TinyFamily, EmbeddedModelSpec, EmbeddedModelName } from './spec/model-spec.js';
export type { Prompts } from './inference/prompts.js';
export type { PromptInfo, PromptLoadOptions, TrainedCheckpoints } from './inference/prompts.js';
export type { GenerateInput, GenerateDelta, GenerateResult, PromptSelection } from './inference/generate.js';
export type { ClassifyInput, ClassifyResult } from './inference/classify.js';
export { Matrix, cosineSimilarity, dot } from './inference/matrix.js';
export { Embeddings } from './inference/embed.js';
export type { EmbedInput, EmbedderOptions, Pooling } from './inference/embed.js';
export type { RerankInput, RerankManyInput, RerankQuery, RerankerOptions, RankedPassage, Reranked, Reranker } from './inference/rerank.js';
export type { Evaluate } from './inference/evaluate.js';
export type {
  RetrievalEvalInput,
  RetrievalEvaluation,
  RetrievalMetricName,
  RerankingEvalInput,
  RerankingEvalRow,
  RerankingEvaluation,
} from './inference/evaluate.js';
export type { Progress, ProgressOptions } from './inference/shared.js';

// Training jobs: one builder per method, sp.train(spec) → TrainingJob, sp.checkpoints.
export { pTuning } from './jobs/p-tuning.js';
export type { PTuningJob, PTuningOptions, PTuningSpec, ResolvedPTuningOptions } from './jobs/p-tuning.js';
export { promptTuning } from './jobs/prompt-tuning.js';
export type { PromptTuningJob, PromptTuningOptions, PromptTuningSpec, ResolvedPromptTuningOptions } from './jobs/prompt-tuning.js';
export { prefixTuning } from './jobs/prefix-tuning.js';
export type { PrefixTuningJob, PrefixTuningOptions, PrefixTuningSpec, ResolvedPrefixTuningOptions } from './jobs/prefix-tuning.js';
export { suffixTuning } from './jobs/suffix-tuning.js';
export type {
  SuffixTuningJob,
  SuffixTuningOptions,
  SuffixTuningSpec,
  ResolvedSuffixTuningOptions,
  EmbeddingTask,
  ResolvedEmbeddingTask,
  EmbeddingRow,
} from './jobs/suffix-tuning.js';
export { passageTuning } from './jobs/passage-tuning.js';
export type {
  PassageTuningJob,
  PassageTuningOptions,
  PassageTuningSpec,
  ResolvedPassageTuningOptions,
  RerankingTask,
  ResolvedRerankingTask,
  RerankingRow,
} from './jobs/passage-tuning.js';
export type { JobSpec, JobInput, MethodName } from './jobs/spec.js';
export type { ModelDType } from './spec/model-spec.js';
export type { LmTask, ResolvedLmTask, GenerationTask, ClassificationTask, GenerationRow, ClassificationRow } from './jobs/lm-tasks.js';
export type { DataOptions, DataSource, FileSource, RowsSource, JsonRow, ResolvedData } from './jobs/data.js';
export type { TrainingOptions, ResolvedTrainingOptions } from './jobs/training-options.js';
export { TrainingJob } from './jobs/job.js';
export type { TrainOptions } from './jobs/job.js';
export type { TrainManyOptions } from './jobs/fused.js';
export { parseBytes } from './jobs/plan.js';
export type { MemoryPlan, MemoryBreakdown, PlanOptions, PlanSettings, PlanSuggestion } from './jobs/plan.js';
export type {
  TrainingEvent,
  DataEvent,
  QueuedEvent,
  StartedEvent,
  StepEvent,
  EvalEvent,
  BestEvent,
  CheckpointEvent,
  SelectionEvent,
  DoneEvent,
  RestartedEvent,
  TrainingResult,
  TrainingSummary,
  BestCheckpoint,
  SelectionOutcome,
  Metrics,
} from './jobs/events.js';
export type {
  Checkpoints,
  CheckpointInfo,
  PeftExport,
  ImportedCheckpoint,
  InspectOptions,
  ExportPeftOptions,
  ImportPeftInput,
} from './jobs/checkpoints.js';
export { inspectCheckpoint } from './jobs/checkpoint-file.js';

// Run reports: one self-contained HTML page per training run (sp.train writes it when a job ends).
export { writeRunReport } from './reports/write.js';
export type { RunReportOptions } from './reports/write.js';
