import path from 'node:path';

/**
 * What the agent needs at start about the models its fine-tuning produces,
 * without loading the fine-tuning code (it loads with the first job):
 * where a kept model lies, and the credentials the hub's artifact routes take.
 */

/** `Basic <base64 of username:password>`: the MQTT credentials the spoke was issued at enrolment. */
export function spokeAuthorization(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}

/** Where a spoke keeps a model its fine-tuning produced: `<state>/finetune/produced/sha256-<hex>/` (model.onnx, labels.txt). */
export function keptArtifactDir(stateDir: string, digest: string): string {
  return path.join(stateDir, 'finetune', 'produced', digest.replace(':', '-'));
}
