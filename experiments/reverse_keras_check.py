r"""Cross-checks the study against Keras itself: same data, model and protocol, in Keras 3.

    python -m experiments.reverse_keras_check --variant=state_seq --len=8

(after `pip install -e ".[test]"`) prints Keras's test token and sequence accuracy: 0.552 and 0.005
for `state_seq`, T=8, seed 0, where seqlstm gets 0.583 and 0.010. Keras runs on its JAX backend;
it is a test extra, not a dependency.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

from absl import app, flags  # noqa: E402

from experiments.launch import one_line_errors  # noqa: E402
from seqlstm.tasks.reverse import make_reverse_task  # noqa: E402

_VARIANT = flags.DEFINE_enum(
    "variant", "state_seq", ["stacked_seq", "state_last_repeat", "state_seq"], "Connection."
)
_LEN = flags.DEFINE_integer("len", 8, "Sequence length T.")
_SEED = flags.DEFINE_integer("seed", 0, "Data and Keras seed.")


def main(argv: list[str]) -> None:
    import keras
    from keras import layers

    del argv
    n, variant = _LEN.value, _VARIANT.value
    keras.utils.set_random_seed(_SEED.value)
    data = make_reverse_task(length=n, seed=_SEED.value)
    inputs = keras.Input((n, 10))
    if variant == "state_seq":
        seq, h, c = layers.LSTM(16, return_sequences=True, return_state=True)(inputs)
        out = layers.LSTM(16, return_sequences=True)(seq, initial_state=[h, c])
    elif variant == "state_last_repeat":
        last, h, c = layers.LSTM(16, return_state=True)(inputs)
        out = layers.LSTM(16, return_sequences=True)(
            layers.RepeatVector(n)(last), initial_state=[h, c]
        )
    else:
        out = layers.LSTM(16, return_sequences=True)(inputs)
        out = layers.LSTM(16, return_sequences=True)(out)
    out = layers.TimeDistributed(layers.Dense(10, activation="softmax"))(out)
    model = keras.Model(inputs, out)
    model.compile("adam", "sparse_categorical_crossentropy")
    history = model.fit(
        data["train"]["inputs"],
        data["train"]["targets"],
        validation_data=(data["val"]["inputs"], data["val"]["targets"]),
        epochs=100,
        batch_size=32,
        verbose=0,
        callbacks=[keras.callbacks.EarlyStopping(patience=5, restore_best_weights=True)],
    )
    pred = model.predict(data["test"]["inputs"], verbose=0).argmax(-1)
    target = data["test"]["targets"]
    print(
        f"Keras {variant} T={n} seed={_SEED.value}: {len(history.history['loss'])} epochs, "
        f"test token accuracy {(pred == target).mean():.3f}, "
        f"sequence accuracy {(pred == target).all(1).mean():.3f}"
    )


if __name__ == "__main__":
    app.run(one_line_errors(main))
