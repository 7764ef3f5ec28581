import { configPbtxt, layoutFor } from './triton-layout.js';

describe('Triton layout', () => {
  it.each([
    ['onnx', 'model.onnx', 'onnxruntime_onnx'],
    ['torchscript', 'model.pt', 'pytorch_libtorch'],
    ['tensorrt', 'model.plan', 'tensorrt_plan'],
  ] as const)('names a %s model %s on platform %s', (format, fileName, platform) => {
    expect(layoutFor(format)).toMatchObject({ fileName, platform });
  });

  it('has no single-file layout for savedmodel', () => {
    expect(layoutFor('savedmodel')).toBeNull();
  });

  it('writes a minimal config with name, platform, backend and no batching', () => {
    const layout = layoutFor('tensorrt');
    if (!layout) throw new Error('tensorrt layout missing');
    expect(configPbtxt('detector', layout)).toBe('name: "detector"\nplatform: "tensorrt_plan"\nbackend: "tensorrt"\nmax_batch_size: 0\n');
  });

  it('leaves platform out for formats Triton has no backend for', () => {
    const layout = layoutFor('safetensors');
    if (!layout) throw new Error('safetensors layout missing');
    expect(configPbtxt('adapter', layout)).toBe('name: "adapter"\nmax_batch_size: 0\n');
  });
});
