/**
 * An error that maps to one HTTP status and a message for the client. The
 * Open Inference Protocol carries every error as `{"error": "<message>"}`; the
 * status says whose fault it was (400 bad request, 404 unknown model, ...).
 */
export class InferenceError extends Error {
  constructor(
    readonly status: 400 | 404 | 405 | 413 | 415 | 500 | 503,
    message: string,
  ) {
    super(message);
    this.name = 'InferenceError';
  }
}

export const badRequest = (message: string): InferenceError => new InferenceError(400, message);
export const notFound = (message: string): InferenceError => new InferenceError(404, message);
