import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException } from '@nestjs/common';
import type { Request, Response } from 'express';
import type { Logger } from 'pino';
import { DomainError } from './domain-error.js';

const CODES: Record<number, string> = {
  400: 'bad_request',
  401: 'unauthenticated',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  409: 'conflict',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
};

/** Turns every error into `{error: {code, message, details}}` with the right status. */
@Catch()
export class HttpErrorFilter implements ExceptionFilter {
  constructor(private readonly log: Logger) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    const req = host.switchToHttp().getRequest<Request>();
    const { status, body } = this.toBody(exception);
    if (status >= 500) this.log.error({ err: exception, reqId: req.id, url: req.url }, 'request failed');
    if (status === 429 && typeof body.error.details.retryAfterSeconds === 'number') {
      res.setHeader('Retry-After', String(body.error.details.retryAfterSeconds));
    }
    if (!res.headersSent) res.status(status).json(body);
  }

  private toBody(exception: unknown): { status: number; body: { error: { code: string; message: string; details: Record<string, unknown> } } } {
    if (exception instanceof DomainError) {
      return { status: exception.status, body: { error: { code: exception.code, message: exception.message, details: exception.details } } };
    }
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const r = exception.getResponse();
      const message = typeof r === 'string' ? r : String((r as { message?: unknown }).message ?? exception.message);
      // Nest re-wraps body-parser's JSON errors as a plain 400.
      const code = status === 400 && /JSON/.test(message) ? 'invalid_json' : (CODES[status] ?? 'error');
      return { status, body: { error: { code, message, details: {} } } };
    }
    // body-parser errors carry a status and a type
    const e = exception as { status?: number; type?: string; message?: string; limit?: number };
    if (typeof e?.status === 'number' && e.status >= 400 && e.status < 500) {
      const code = e.type === 'entity.parse.failed' ? 'invalid_json' : e.type === 'entity.too.large' ? 'payload_too_large' : (CODES[e.status] ?? 'bad_request');
      const message =
        e.type === 'entity.parse.failed'
          ? `request body is not valid JSON: ${e.message}`
          : e.type === 'entity.too.large' && typeof e.limit === 'number'
            ? `request body is over the limit of ${e.limit} bytes for its content type`
            : (e.message ?? 'bad request');
      const details = e.type === 'entity.too.large' && typeof e.limit === 'number' ? { limitBytes: e.limit } : {};
      return { status: e.status, body: { error: { code, message, details } } };
    }
    return { status: 500, body: { error: { code: 'internal', message: 'internal error; see the hub log', details: {} } } };
  }
}
