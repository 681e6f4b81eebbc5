"""Train a small LSTM to add two marked numbers (the adding problem), then show it working."""

import time

import numpy as np

import rnnlab
from rnnlab.data.synthetic import adding_accuracy, adding_problem
from rnnlab.optim import Adam

T = 20
X, Y = adding_problem(4000, T, seed=0)
Xt, Yt = adding_problem(500, T, seed=1)
net = rnnlab.Network(2, 32, 1, cell="lstm", output="linear", readout="last", seed=0)
opt = Adam(lr=1e-2)
rng = np.random.default_rng(0)
start = time.perf_counter()
for epoch in range(15):
    order = rng.permutation(len(X))
    for i in range(0, len(X), 50):
        idx = order[i:i + 50]
        res = net.loss_and_grad(X[idx], Y[idx])
        rnnlab.clip.clip_by_global_norm(res.grads, 1.0)
        opt.step(net.params, res.grads)
    acc = adding_accuracy(net.predict(Xt), Yt)
    print(f"epoch {epoch + 1}: test MSE {net.loss(Xt, Yt):.4f}, "
          f"solved (|error| < 0.04) {acc:.1%}, {time.perf_counter() - start:.0f} s")
print("sum of the marked values vs prediction:")
for y, p in zip(Yt[:3], net.predict(Xt[:3]), strict=True):
    print(f"  {y[0]:.3f}  ->  {p[0]:.3f}")
