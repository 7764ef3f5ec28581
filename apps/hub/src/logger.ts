import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LoggerService } from '@nestjs/common';
import pino, { type Logger } from 'pino';
import type { Options as HttpLogOptions } from 'pino-http';
import PinoPretty from 'pino-pretty';

/** Fields a terminal reader does not need on every line (JSON keeps them all). */
const HIDDEN_WHEN_PRETTY = 'pid,hostname,service,component,req,res,responseTime';

/**
 * The hub's logger: JSON lines (for collectors) or, on a terminal, one
 * readable line per event (pino-pretty in this thread, written synchronously,
 * so nothing printed around it, such as the start banner, is cut in half).
 */
export function createLogger(level: string, format: 'pretty' | 'json' = 'json'): Logger {
  const options: pino.LoggerOptions = {
    level,
    base: { service: 'flotilla-hub' },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Secrets never reach the log.
    redact: { paths: ['req.headers.authorization', 'req.headers.cookie', 'password', '*.password', 'token', '*.token'], censor: '[redacted]' },
  };
  if (format === 'json') return pino(options);
  const pretty = PinoPretty({
    sync: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: HIDDEN_WHEN_PRETTY,
    messageFormat: (log, messageKey) => `${typeof log.component === 'string' ? `[${log.component}] ` : ''}${String(log[messageKey] ?? '')}`,
  });
  return pino(options, pretty);
}

/**
 * Request logging: one line per request at info with the method, URL,
 * status, duration and request id (`X-Request-Id`, taken from the caller
 * when well-formed); the full request and response headers only when the
 * level is debug or finer. Probes and scrapes are not logged.
 */
export function requestLogOptions(log: Logger): HttpLogOptions {
  const withHeaders = log.isLevelEnabled('debug');
  return {
    logger: log,
    genReqId: (req, res) => {
      const given = req.headers['x-request-id'];
      const id = typeof given === 'string' && /^[\w.-]{1,64}$/.test(given) ? given : randomUUID();
      res.setHeader('X-Request-Id', id);
      return id;
    },
    autoLogging: { ignore: (req) => req.url === '/healthz' || req.url === '/readyz' || req.url === '/metrics' },
    customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info'),
    customSuccessMessage: (req: IncomingMessage, res: ServerResponse, ms: number) => `${req.method} ${req.url} ${res.statusCode} ${Math.round(ms)} ms`,
    customErrorMessage: (req: IncomingMessage, res: ServerResponse, err: Error) => `${req.method} ${req.url} ${res.statusCode} ${err.message}`,
    ...(withHeaders
      ? {}
      : {
          serializers: {
            req: (req: { id: unknown; method: string; url: string }) => ({ id: req.id, method: req.method, url: req.url }),
            res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
          },
        }),
  };
}

/** Routes NestJS's own log lines into the hub's pino logger. */
export class NestPinoLogger implements LoggerService {
  constructor(private readonly pino: Logger) {}
  log(message: unknown, context?: string) {
    this.pino.debug({ context }, String(message));
  }
  error(message: unknown, trace?: string, context?: string) {
    this.pino.error({ context, trace }, String(message));
  }
  warn(message: unknown, context?: string) {
    this.pino.warn({ context }, String(message));
  }
  debug(message: unknown, context?: string) {
    this.pino.debug({ context }, String(message));
  }
  verbose(message: unknown, context?: string) {
    this.pino.trace({ context }, String(message));
  }
}
