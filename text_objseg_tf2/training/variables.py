"""Which variables a stage trains, which get weight decay, and their learning-rate multipliers.

The rules are the original scripts' filters on TF1 variable names (`net.tf1_variables(kind)`
gives those names, release spelling).
"""

import dataclasses

# TF >= 1.2 named the LSTM matrix `.../basic_lstm_cell/kernel`, which the original's decay filter
# (names ending in `weights` or `Matrix`) missed; the released models were trained when it was
# `.../Linear/Matrix` and so decayed.
LSTM_MATRIX_SUFFIX = "/Matrix"


@dataclasses.dataclass(frozen=True)
class VariableSelection:
    """`train`, `decay`: `{TF1 name: variable}` (decay is a subset of train); `lr_mult`:
    `{TF1 name: gradient multiplier}` for every trained variable."""

    train: dict
    decay: dict
    lr_mult: dict


def select_variables(net, kind, fix_convnet, decay_lstm_matrix=True, vgg_lr_mult=1.0,
                     train_vgg_conv=False):
    """The trained / decayed variables of `net`'s model `kind`, as the original selected them.

    Args:
      fix_convnet: True trains all but `vgg_local/*` (the det default); False all but
        `vgg_local/conv*` (the segmentation default, which trains fc6..fc8).
      decay_lstm_matrix: decay the LSTM matrix (the released models' training); False gives the
        repository code run on TF >= 1.2, where the matrix's name escaped the decay filter.
      vgg_lr_mult: multiplier of the gradients of trained `vgg_local/*` variables.
      train_vgg_conv: train everything, the VGG convolutions included (not in the original;
        for small synthetic runs).
    """
    variables = net.tf1_variables(kind)
    if train_vgg_conv:
        train = dict(variables)
    elif fix_convnet:
        train = {n: v for n, v in variables.items() if not n.startswith("vgg_local/")}
    else:
        train = {n: v for n, v in variables.items() if not n.startswith("vgg_local/conv")}
    decay = {n: v for n, v in train.items()
             if n.endswith("/weights") or (decay_lstm_matrix and n.endswith(LSTM_MATRIX_SUFFIX))}
    lr_mult = {n: (float(vgg_lr_mult) if n.startswith("vgg_local") else 1.0) for n in train}
    return VariableSelection(train=train, decay=decay, lr_mult=lr_mult)
