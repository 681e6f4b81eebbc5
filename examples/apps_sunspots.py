"""Forecasting: yearly sunspot numbers one year ahead, the last 40 years (1969-2008) held out.

A recurrent net reads ``window`` standardised years and a linear head forecasts the next one
(many-to-one, squared error), trained with rnnlab's Network, Adam with a cosine schedule and
global-norm clipping. The script computes, on the same 40 test years and in sunspot units:

* persistence: next year = this year;
* AR(p): statsmodels ``AutoReg`` with a constant, fitted on the training years 1700-1968
  only, p chosen there by AIC (up to ``window`` lags), forecasting each test year from the
  observed years before it;
* the network, for several seeds (the data are small, so one seed says little), and the
  mean of their forecasts (an ensemble, itself one forecaster).

The defaults (GRU, 32 units, window 20, 100 epochs) were chosen on validation years
1929-1968 with the network trained on targets up to 1928 (3 seeds each; more epochs or an
LSTM overfit there); the test years were not used to choose anything.

Target: test RMSE below both persistence and AR. Needs statsmodels:
pip install 'rnnlab[data]'.

    python examples/apps_sunspots.py [--cell gru] [--hidden 32] [--window 20] [--seeds 5]
"""

import argparse
import time

import numpy as np

import rnnlab
from rnnlab.data.series import sunspot_numbers, sunspots, unscale
from rnnlab.optim import cosine

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--cell", default="gru", choices=["lstm", "gru", "elman"])
parser.add_argument("--hidden", type=int, default=32)
parser.add_argument("--window", type=int, default=20)
parser.add_argument("--epochs", type=int, default=100)
parser.add_argument("--batch", type=int, default=32)
parser.add_argument("--lr", type=float, default=3e-3)
parser.add_argument("--seeds", type=int, default=5)
args = parser.parse_args()

try:
    data = sunspots(window=args.window, horizon=1)
    from statsmodels.tsa.ar_model import AutoReg, ar_select_order
except (ValueError, ImportError) as e:
    raise SystemExit(str(e).splitlines()[0]) from None
years, values = sunspot_numbers()
n_train = len(values) - 40
test_idx = np.arange(n_train, len(values))  # positions of the 40 held-out years
truth = values[test_idx]
print(data, "|", data.meta["split"])


def rmse(forecast):
    return float(np.sqrt(np.mean((forecast - truth) ** 2)))


persistence = rmse(values[test_idx - 1])
order = ar_select_order(values[:n_train], maxlag=args.window, ic="aic", trend="c")
p = max(order.ar_lags) if order.ar_lags else 0
fit = AutoReg(values[:n_train], lags=p, trend="c").fit()
const, phi = fit.params[0], fit.params[1:]  # y_t = c + sum_i phi_i y_{t-i}
ar = rmse(np.array([const + phi @ values[t - p:t][::-1] for t in test_idx]))
print(f"persistence RMSE {persistence:.2f};  AR({p}) fitted on 1700-1968 RMSE {ar:.2f}")

scores, forecasts, start = [], [], time.perf_counter()
for seed in range(args.seeds):
    net = rnnlab.Network(1, args.hidden, 1, cell=args.cell, output="linear", readout="last",
                         seed=seed)
    steps_per_epoch = -(-len(data.X_train) // args.batch)
    trainer = rnnlab.Trainer(net, "adam", args.lr, clip_norm=1.0, progress=False,
                             schedule=cosine(args.lr, args.epochs * steps_per_epoch))
    rng = np.random.default_rng(seed)
    for _ in range(args.epochs):
        perm = rng.permutation(len(data.X_train))
        for i in range(0, len(perm), args.batch):
            idx = perm[i:i + args.batch]
            trainer.train_step(data.X_train[idx], data.y_train[idx])
    forecast = unscale(net.predict(data.X_test)[:, 0], data.meta)  # (40,) sunspot numbers
    train_rmse = float(np.sqrt(net.loss(data.X_train, data.y_train))) * \
        data.meta["preprocessing"]["std"]
    scores.append(rmse(forecast))
    forecasts.append(forecast)
    print(f"seed {seed}: {args.cell} H={args.hidden} test RMSE {scores[-1]:.2f} "
          f"(train {train_rmse:.2f}), {time.perf_counter() - start:.0f} s so far")
wall = time.perf_counter() - start
print(f"sunspots 1969-2008, one year ahead: {args.cell} RMSE {np.mean(scores):.2f} "
      f"+- {np.std(scores):.2f} over {args.seeds} seeds (best {min(scores):.2f}, worst "
      f"{max(scores):.2f}); mean of the {args.seeds} forecasts {rmse(np.mean(forecasts, 0)):.2f}; "
      f"persistence {persistence:.2f}; AR({p}) {ar:.2f}; training {wall:.0f} s")
