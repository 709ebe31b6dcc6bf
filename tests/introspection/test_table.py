"""Layer tables: formulas against hand counts, totals against numel, fields and mult-adds."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from deeparch.errors import UnknownNameError
from deeparch.introspection.formulas import parameter_formula
from deeparch.introspection.table import (
    LayerTable,
    dataset_info_for,
    layer_table,
    summarize,
)
from deeparch.models.registry import create_model, get_arch, list_archs


def numel(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def only_row(module: nn.Module, example) -> object:
    table = layer_table(module, example)
    assert len(table.rows) == 1
    return table.rows[0]


# --- formulas: the string a student reads, and its value against numel ---------------------------


@pytest.mark.parametrize(
    "module, expected",
    [
        (nn.Conv2d(1, 32, 3), "32x(1x3x3)+32 = 320"),
        (nn.Conv2d(32, 64, 3, groups=2), "64x(32/2x3x3)+64 = 9,280"),
        (nn.Conv2d(3, 64, 7, bias=False), "64x(3x7x7) = 9,408"),
        (nn.Conv1d(1, 32, 5), "32x(1x5)+32 = 192"),
        (nn.Linear(576, 64), "576x64+64 = 36,928"),
        (nn.Linear(576, 64, bias=False), "576x64 = 36,864"),
        (nn.BatchNorm2d(64), "2x64 = 128"),
        (nn.BatchNorm1d(500), "2x500 = 1,000"),
        (nn.LayerNorm(32), "2x32 = 64"),
        (nn.Embedding(17, 32), "17x32 = 544"),
        (nn.ConvTranspose2d(128, 64, 4), "128x(64x4x4)+64 = 131,136"),
        (nn.ConvTranspose2d(100, 512, 4, bias=False), "100x(512x4x4) = 819,200"),
        (nn.ReLU(), "0"),
        (nn.MaxPool2d(2), "0"),
    ],
)
def test_formula_strings(module, expected):
    assert parameter_formula(module) == expected
    assert expected.endswith(f"{numel(module):,}")


def recurrent_count(gates: int, inputs: int, hidden: int, layers: int, directions: int) -> int:
    """gates x (h(i+h) + 2h) per layer and direction, the deeper layers reading directions*h."""
    total = 0
    for layer in range(layers):
        layer_inputs = inputs if layer == 0 else hidden * directions
        total += directions * gates * (hidden * (layer_inputs + hidden) + 2 * hidden)
    return total


def test_lstm_formula_two_layers():
    lstm = nn.LSTM(10, 20, num_layers=2)
    # 4x(20x(10+20)+2x20) = 2,560 and 4x(20x(20+20)+2x20) = 3,360
    assert recurrent_count(4, 10, 20, 2, 1) == 2_560 + 3_360 == numel(lstm)
    assert parameter_formula(lstm) == "4x(20x(10+20)+2x20) + 4x(20x(20+20)+2x20) = 5,920"


@pytest.mark.parametrize(
    "cls, gates", [(nn.LSTM, 4), (nn.GRU, 3), (nn.RNN, 1)], ids=["lstm", "gru", "rnn"]
)
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, True), (3, False)])
def test_recurrent_formula_values(cls, gates, layers, bidirectional):
    module = cls(7, 12, num_layers=layers, bidirectional=bidirectional, batch_first=True)
    expected = recurrent_count(gates, 7, 12, layers, 2 if bidirectional else 1)
    assert expected == numel(module)
    formula = parameter_formula(module)
    assert formula.endswith(f"= {expected:,}")
    assert formula.startswith(f"2x[{gates}x(" if bidirectional else f"{gates}x(12x(7+12)")
    assert formula.count(f"{gates}x(12x(") == layers


def test_gru_and_rnn_formula_strings():
    assert parameter_formula(nn.GRU(8, 16)) == "3x(16x(8+16)+2x16) = 1,248"
    assert parameter_formula(nn.RNN(1, 32)) == "1x(32x(1+32)+2x32) = 1,120"
    assert parameter_formula(nn.LSTMCell(3, 5)) == "4x(5x(3+5)+2x5) = 200"


def test_lstm_with_projection_matches_numel():
    lstm = nn.LSTM(6, 10, num_layers=2, proj_size=4)
    assert parameter_formula(lstm).endswith(f"= {numel(lstm):,}")


def test_unknown_layer_lists_its_parameter_shapes():
    class Scale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gain = nn.Parameter(torch.ones(3, 4))
            self.offset = nn.Parameter(torch.zeros(4))

        def forward(self, x):
            return x * self.gain + self.offset

    row = only_row(Scale(), torch.zeros(1, 3, 4))
    assert row.formula == "gain 3x4 + offset 4 = 16"
    assert row.params == 16


# --- rows and totals ------------------------------------------------------------------------------


def chollet_convnet() -> nn.Sequential:
    """Chollet's MNIST convnet: 320 + 18,496 + 36,928 + 36,928 + 650 = 93,322 parameters."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3), nn.ReLU(),
        nn.Flatten(), nn.Linear(576, 64), nn.ReLU(), nn.Linear(64, 10),
    )  # fmt: skip


def test_chollet_convnet_table_by_hand():
    table = layer_table(chollet_convnet(), (1, 28, 28))
    assert [r.params for r in table.rows if r.params] == [320, 18_496, 36_928, 36_928, 650]
    assert table.total_params == table.trainable_params == 93_322
    shapes = [r.output_shape for r in table.rows]
    assert shapes[0] == (1, 32, 26, 26) and shapes[5] == (1, 64, 5, 5)
    assert shapes[8] == (1, 576) and shapes[-1] == (1, 10)
    conv = table.rows[0]
    assert conv.detail["code"] == "nn.Conv2d(1, 32, kernel_size=(3, 3), stride=(1, 1))"
    assert conv.detail["weight_shape"] == [32, 1, 3, 3] and conv.detail["bias_shape"] == [32]
    assert conv.detail["input_shape"] == [1, 1, 28, 28]
    assert conv.detail["kernel_size"] == [3, 3] and conv.detail["padding"] == [0, 0]
    assert [r.name for r in table.rows][:3] == ["0", "1", "2"]


@pytest.mark.skipif("cnn" not in list_archs(), reason="the cnn family is not registered")
def test_registered_cnn_is_chollets_convnet():
    table = summarize("cnn")
    assert [r.params for r in table.rows if r.params] == [320, 18_496, 36_928, 36_928, 650]
    assert table.total_params == 93_322


@pytest.mark.parametrize("arch", list_archs())
def test_table_total_equals_numel_for_every_architecture(arch):
    table = summarize(arch)
    model, _ = create_model(arch, None, dataset_info_for(arch))
    assert table.total_params == numel(model)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert table.trainable_params == trainable
    assert sum(table.subtotals.values()) == table.total_params
    # Every layer with parameters ran (GAN parts run separately, a VAE returns a tuple).
    assert all(r.output_shape is not None for r in table.rows if r.params)
    assert all(r.mult_adds >= 0 for r in table.rows)
    assert all(r.formula.endswith(f"{r.params:,}") for r in table.rows if r.params)


def test_gan_parts_run_separately():
    gans = [name for name in list_archs() if get_arch(name).task == "gan"]
    if not gans:
        pytest.skip("no gan registered")
    table = summarize(gans[0])
    assert set(table.subtotals) == {"generator", "discriminator"}
    model, _ = create_model(gans[0], None, dataset_info_for(gans[0]))
    assert table.subtotals["generator"] == numel(model.generator)
    assert table.subtotals["discriminator"] == numel(model.discriminator)
    assert len(table.input_shapes) == 2


@pytest.mark.parametrize("arch", ["vae", "conv_vae"])
def test_vae_parts_are_encoder_and_decoder(arch):
    # The mu and logvar heads read the encoder's features, so they count towards the encoder.
    table = summarize(arch)
    model, _ = create_model(arch, None, dataset_info_for(arch))
    assert list(table.subtotals) == ["encoder", "decoder"]
    heads = numel(model.mu) + numel(model.logvar)
    assert table.subtotals["encoder"] == numel(model.encoder) + heads
    assert table.subtotals["decoder"] == numel(model.decoder)
    assert {row.name: row.part for row in table.rows}["mu"] == "encoder"


def test_model_can_group_children_into_parts():
    class TwoHeads(nn.Module):
        inspector_parts = {"head_a": "heads", "head_b": "heads"}

        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Linear(4, 3)
            self.head_a = nn.Linear(3, 2)
            self.head_b = nn.Linear(3, 1)

        def forward(self, x):
            features = self.body(x)
            return self.head_a(features), self.head_b(features)

    table = layer_table(TwoHeads(), torch.zeros(1, 4))
    assert table.subtotals == {"body": 4 * 3 + 3, "heads": 3 * 2 + 2 + 3 * 1 + 1}


def test_token_input_uses_an_embedding():
    if "lstm" not in list_archs():
        pytest.skip("the rnn family is not registered")
    table = summarize("lstm", dataset="digits_tokens")
    embedding = next(r for r in table.rows if r.type == "Embedding")
    assert embedding.formula.startswith("17x")
    assert table.input_shapes[0] == (1, 64)


def test_torchvision_resnet18_matches_the_published_count():
    table = summarize("torchvision:resnet18")
    assert table.total_params == 11_689_512  # torchvision's documented resnet18 size
    assert sum(table.subtotals.values()) == 11_689_512
    assert table.rows[0].output_shape == (1, 64, 112, 112)
    assert table.rows[-1].output_shape == (1, 1000)


def test_unknown_torchvision_name_lists_known_ones():
    with pytest.raises(UnknownNameError, match="resnet18"):
        summarize("torchvision:resnet_nope")


def test_tied_weights_are_counted_once():
    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(10, 4)
            self.unembed = nn.Linear(4, 10, bias=False)
            self.unembed.weight = self.embed.weight

        def forward(self, tokens):
            return self.unembed(self.embed(tokens))

    model = Tied()
    table = layer_table(model, torch.zeros(1, 5, dtype=torch.long))
    assert table.total_params == numel(model) == 40
    assert table.rows[1].params == 0 and "shares weight" in table.rows[1].formula


def test_modes_are_restored_and_batch_norm_takes_a_batch_of_one():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
    model.train()
    model[1].eval()  # a frozen BatchNorm inside a training model keeps its own mode
    layer_table(model, (3,))
    assert model.training and model[0].training and not model[1].training


def test_dataframe_and_dicts():
    table = layer_table(chollet_convnet(), (1, 28, 28))
    frame = table.to_dataframe()
    assert list(frame.columns)[:4] == ["name", "type", "output_shape", "params"]
    assert int(frame["params"].sum()) == 93_322
    assert frame["output_shape"].iloc[0] == "1x32x26x26"
    dicts = table.to_dicts()
    assert dicts[0]["output_shape"] == [1, 32, 26, 26] and dicts[0]["params"] == 320
    assert isinstance(table, LayerTable) and not table.has_parts


# --- receptive fields and mult-adds against hand counts -------------------------------------------


def test_receptive_field_of_a_conv_stack_by_hand():
    stack = nn.Sequential(
        nn.Conv2d(1, 4, 3),  # field 3, jump 1
        nn.MaxPool2d(2),  # 3 + (2-1)*1 = 4, jump 2
        nn.Conv2d(4, 4, 3, dilation=2),  # effective kernel 5: 4 + 4*2 = 12, jump 2
        nn.Conv2d(4, 4, 5, stride=2),  # 12 + 4*2 = 20, jump 4
        nn.ReLU(),
        nn.Conv2d(4, 4, 3),  # 20 + 2*4 = 28, jump 4
    )
    table = layer_table(stack, (1, 64, 64))
    fields = [r.detail.get("receptive_field") for r in table.rows]
    assert fields == [[3, 3], [4, 4], [12, 12], [20, 20], None, [28, 28]]
    assert table.rows[-1].detail["jump"] == [4, 4]


def test_receptive_field_follows_residual_branches():
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(2, 2, 3, padding=1)
            self.conv2 = nn.Conv2d(2, 2, 3, padding=1)
            self.shortcut = nn.Conv2d(2, 2, 1)

        def forward(self, x):
            return F.relu(self.conv2(self.conv1(x)) + self.shortcut(x))

    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), Block(), Block())
    fields = {r.name: r.detail["receptive_field"][0] for r in layer_table(model, (1, 16, 16)).rows}
    # stem 3; block 1: 5, 7, shortcut sees the block input (3); block 2 starts from the sum (7).
    assert fields == {
        "0": 3,
        "1.conv1": 5,
        "1.conv2": 7,
        "1.shortcut": 3,
        "2.conv1": 9,
        "2.conv2": 11,
        "2.shortcut": 7,
    }


def test_conv_mult_adds_against_an_unfolded_count():
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
    x = torch.rand(1, 4, 15, 15)
    patches = F.unfold(x, 3, padding=1, stride=2)  # (1, 4*3*3, positions)
    positions = patches.shape[-1]
    # Each output value is a dot product over the 2 input channels of its group, 3x3 each.
    expected = positions * conv.out_channels * (4 // 2) * 3 * 3
    assert positions == 8 * 8 and expected == 6_912
    assert only_row(conv, x).mult_adds == expected


def test_mult_adds_are_per_sample_and_count_every_position():
    linear = nn.Linear(5, 7)
    assert only_row(linear, torch.rand(3, 11, 5)).mult_adds == 11 * 5 * 7
    lstm = nn.LSTM(3, 8, batch_first=True)
    assert only_row(lstm, torch.rand(2, 20, 3)).mult_adds == 20 * 4 * 8 * (3 + 8)
    deconv = nn.ConvTranspose2d(4, 2, 3)
    # Each of the 4x5x5 input values is spread by 2 filters of 3x3.
    assert only_row(deconv, torch.rand(1, 4, 5, 5)).mult_adds == 4 * 5 * 5 * 2 * 3 * 3


@pytest.mark.parametrize(
    "arch", [name for name in list_archs() if get_arch(name).task == "seq2seq"]
)
def test_a_decoder_row_shows_the_whole_output_sequence_not_one_step(arch):
    # A greedy decoder runs its layers once per output token; the table shows their last call,
    # which is the model's own output, and says why in a note.
    table = summarize(arch)
    info = dataset_info_for(arch)
    model, _ = create_model(arch, None, info)
    model.eval()
    with torch.no_grad():
        output = model(torch.zeros(1, *info.input_shape, dtype=torch.long))
    head = next(row for row in table.rows if row.name == "head")
    assert head.output_shape == tuple(output.shape) == (1, info.target_shape[0], info.num_classes)
    assert any("last call's" in note for note in table.notes)
