import { parseContentRange } from './source.js';
import { parseS3Uri } from './s3-source.js';
import { filePathOf } from './file-source.js';

describe('parseContentRange', () => {
  it('reads start, end and total', () => {
    expect(parseContentRange('bytes 100-199/1000')).toEqual({ start: 100, end: 199, total: 1000 });
  });
  it('accepts an unknown total', () => {
    expect(parseContentRange('bytes 0-9/*')).toEqual({ start: 0, end: 9, total: null });
  });
  it.each([null, '', 'bytes */1000', 'items 0-9/10', 'bytes 9-0/10', 'bytes 0-10/10', 'bytes=0-9/10'])('rejects %p', (value) => {
    expect(parseContentRange(value)).toBeNull();
  });
});

describe('parseS3Uri', () => {
  it('splits bucket and a key with slashes, decoding escapes', () => {
    expect(parseS3Uri('s3://models/bridge/v1/model%20a.onnx')).toEqual({ bucket: 'models', key: 'bridge/v1/model a.onnx' });
  });
  it.each(['s3://bucket', 's3://bucket/', 's3:///key', 'http://bucket/key', 's3://b/%E0%A4%A'])('rejects %p', (uri) => {
    expect(parseS3Uri(uri)).toBeNull();
  });
});

describe('filePathOf', () => {
  it('decodes file:/// URLs', () => {
    expect(filePathOf('file:///srv/models/a%20b.onnx', '/base')).toBe('/srv/models/a b.onnx');
  });
  it('takes file:/abs as an absolute URL path', () => {
    expect(filePathOf('file:/srv/m.onnx', '/base')).toBe('/srv/m.onnx');
  });
  it('resolves file:relative against the base directory', () => {
    expect(filePathOf('file:models/m.onnx', '/base')).toBe('/base/models/m.onnx');
  });
  it('refuses a file URL naming another host', () => {
    expect(() => filePathOf('file://otherhost/m.onnx', '/base')).toThrow();
  });
});
