"""A Keras LSTM layer that runs its recurrence in PyTorch's fused kernel.

Keras's own ``keras.layers.LSTM`` runs the time steps as a Python loop on the
PyTorch backend's CPU path. This layer keeps its weights as Keras variables
(so ``model.fit``, the optimizer and ``model.save`` treat it as any Keras
layer) and passes them to ``torch.lstm``, which loops over the steps in C++.
"""

from __future__ import annotations

import keras
import torch


@keras.saving.register_keras_serializable(package="zoo_keras")
class FusedLSTM(keras.layers.Layer):
    """One LSTM layer that returns the hidden state of the last time step.

    Input shape (batch, steps, features); output shape (batch, units). Gates
    are ordered input, forget, cell, output, as in both Keras and PyTorch.
    Initialization follows ``keras.layers.LSTM``: Glorot-uniform input
    kernel, orthogonal recurrent kernel, zero bias except 1 for the forget gate.
    """

    def __init__(self, units: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape) -> None:
        features = input_shape[-1]
        self.kernel = self.add_weight(shape=(4 * self.units, features), initializer="glorot_uniform", name="kernel")
        self.recurrent_kernel = self.add_weight(
            shape=(4 * self.units, self.units), initializer="orthogonal", name="recurrent_kernel"
        )
        forget_bias = [0.0] * self.units + [1.0] * self.units + [0.0] * (2 * self.units)
        self.bias = self.add_weight(
            shape=(4 * self.units,), initializer=keras.initializers.Constant(forget_bias), name="bias"
        )

    def call(self, inputs):
        batch = inputs.shape[0]
        state = torch.zeros(1, batch, self.units, dtype=inputs.dtype, device=inputs.device)
        # torch.lstm takes separate input and recurrent biases; one trained bias plus zeros is the same function.
        recurrent_bias = torch.zeros_like(self.bias.value)
        weights = [self.kernel.value, self.recurrent_kernel.value, self.bias.value, recurrent_bias]
        _, last_hidden, _ = torch.lstm(
            inputs, (state, state), weights, True, 1, 0.0, torch.is_grad_enabled(), False, True
        )
        return last_hidden[0]  # (1, batch, units) -> (batch, units)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units)

    def get_config(self) -> dict:
        return {**super().get_config(), "units": self.units}
