# Accuracy of an exported ONNX model under onnxruntime on the MNIST test set, fed pixels in 0..1
# (the exported graph normalises them itself):
#   python3 scripts/onnxruntime-accuracy.py model.onnx DATA_DIR/mnist
import gzip, sys, numpy as np, onnxruntime as ort
d = sys.argv[2]
x = np.frombuffer(gzip.open(f"{d}/t10k-images-idx3-ubyte.gz").read()[16:], np.uint8).reshape(-1, 1, 28, 28).astype(np.float32) / 255
y = np.frombuffer(gzip.open(f"{d}/t10k-labels-idx1-ubyte.gz").read()[8:], np.uint8)
s = ort.InferenceSession(sys.argv[1])
logits = np.concatenate([s.run(None, {s.get_inputs()[0].name: x[i:i + 1000]})[0] for i in range(0, len(x), 1000)])
print(f"onnxruntime {ort.__version__}: {(logits.argmax(1) == y).mean() * 100:.2f}% on {len(y)} test images;", s.get_modelmeta().custom_metadata_map)
