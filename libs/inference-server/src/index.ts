/**
 * Flotilla's reference inference server (`runtime: builtin`): ONNX Runtime
 * behind the Open Inference Protocol (KServe v2 HTTP) with Triton-style
 * Prometheus metrics. Start it in-process with `startInferenceServer`, or as a
 * process with `main.js` (dist/libs/inference-server/src/main.js).
 */
export {
  startInferenceServer,
  SERVER_NAME,
  SERVER_VERSION,
  ONNX_PLATFORM,
  DEFAULT_MAX_REQUEST_BYTES,
  type InferenceServer,
  type InferenceServerOptions,
  type ServedModel,
} from './server.js';
export { type ModelSource, type ExecutionProvider, type ExecutionProviderChoice } from './loaded-model.js';
export { readModelRepository, latestVersion } from './model-repository.js';
export { parseServerConfig, ConfigError, USAGE, type ServerConfig } from './cli-args.js';
export { InferenceMetrics, type InferenceTimings, type ModelLabels } from './metrics.js';
export { type Logger, silentLogger } from './logger.js';
export { type TensorSpec, type ModelSignature } from './signature.js';
export { V2_DATATYPES, type V2Datatype } from './datatypes.js';
