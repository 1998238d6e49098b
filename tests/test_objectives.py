"""Objectives: per-element values, algebra, unit checks."""

from __future__ import annotations

import pytest
import torch

from phosphene import objectives as obj
from phosphene.errors import PhospheneError, UnitOutOfRangeError
from phosphene.objectives import Acts, evaluate, parse_units


@pytest.fixture
def acts() -> Acts:
    a = torch.arange(4 * 3 * 2 * 2, dtype=torch.float32).view(4, 3, 2, 2) / 10
    return Acts({"L": a, "logits": torch.tensor([[1.0, 2.0, 3.0]] * 4)})


def test_channel_takes_one_unit_per_batch_element(acts):
    values = obj.channel("L", [0, 1, 2, 0])(acts)
    expected = torch.stack([acts["L"][b, c].mean() for b, c in enumerate([0, 1, 2, 0])])
    assert torch.allclose(values, expected)


def test_an_int_unit_applies_to_every_element(acts):
    assert torch.allclose(obj.channel("L", 1)(acts), acts["L"][:, 1].mean((1, 2)))


def test_neuron_defaults_to_the_centre_and_takes_positions(acts):
    assert torch.allclose(obj.neuron("L", 2)(acts), acts["L"][:, 2, 1, 1])
    assert torch.allclose(obj.neuron("L", 2, x=0, y=1)(acts), acts["L"][:, 2, 1, 0])


def test_deepdream_is_the_mean_square(acts):
    assert torch.allclose(obj.deepdream("L")(acts), acts["L"].pow(2).mean((1, 2, 3)))


def test_direction_dot_and_cosine_weighting(acts):
    v = torch.tensor([0.0, 3.0, 4.0])
    dot = (acts["L"] * (v / 5)[None, :, None, None]).sum(1)
    assert torch.allclose(obj.direction("L", v)(acts), dot.mean((1, 2)))
    cos = dot / acts["L"].norm(dim=1)
    weighted = obj.direction("L", v, cossim_pow=2)(acts)
    assert torch.allclose(weighted, (dot * cos.clamp_min(0.1) ** 2).mean((1, 2)))


def test_class_logit_and_probability(acts):
    assert torch.allclose(obj.class_logit([2, 0, 1, 2])(acts), torch.tensor([3.0, 1.0, 2.0, 3.0]))
    assert torch.allclose(obj.class_prob(2)(acts), torch.softmax(torch.tensor([1.0, 2, 3]), 0)[2].expand(4))


def test_algebra_combines_values_and_layers(acts):
    a, b = obj.channel("L", 0), obj.deepdream("L")
    combined = 2 * a - b / 4 + 1.5
    assert torch.allclose(combined(acts), 2 * a(acts) - b(acts) / 4 + 1.5)
    assert torch.allclose((-a)(acts), -a(acts))
    assert torch.allclose((3 - a)(acts), 3 - a(acts))
    assert (a + obj.class_logit(0)).layers == {"L", "logits"}


def test_objectives_of_different_batch_sizes_do_not_combine():
    with pytest.raises(PhospheneError):
        obj.channel("L", [0, 1]) + obj.channel("L", [0, 1, 2])


def test_out_of_range_channel_is_reported(acts):
    with pytest.raises(UnitOutOfRangeError, match="channel 3 out of range"):
        obj.channel("L", 3)(acts)


def test_copies_are_averaged_per_image():
    a = torch.arange(8, dtype=torch.float32).view(4, 1, 1, 2)
    values = evaluate(obj.channel("L", [0, 0]), Acts({"L": a}, copies=2), copies=2)
    assert torch.allclose(values, torch.tensor([(0.5 + 2.5) / 2, (4.5 + 6.5) / 2]))


def test_diversity_is_zero_for_orthogonal_styles_and_negative_for_equal_ones():
    orthogonal = torch.zeros(2, 2, 1, 1)
    orthogonal[0, 0] = orthogonal[1, 1] = 1
    assert torch.allclose(obj.diversity("L")(Acts({"L": orthogonal})), torch.zeros(2))
    same = torch.ones(3, 2, 2, 2)
    assert torch.allclose(obj.diversity("L")(Acts({"L": same})), torch.full((3,), -2 / 3))



def test_grouped_diversity_compares_each_group_only_within_itself():
    styles = torch.rand(6, 3, 2, 2)
    grouped = obj.diversity("L", group=3)(Acts({"L": styles}))
    separate = torch.cat([obj.diversity("L")(Acts({"L": styles[i:i + 3]})) for i in (0, 3)])
    assert torch.allclose(grouped, separate)
    assert not torch.allclose(grouped, obj.diversity("L")(Acts({"L": styles})))

def test_parse_units():
    assert parse_units("0-3") == [0, 1, 2, 3]
    assert parse_units("1,5,7-8") == [1, 5, 7, 8]
    for bad in ("", "a-b", "5-2"):
        with pytest.raises(PhospheneError):
            parse_units(bad)


def test_alignment_is_dot_times_cosine_power(acts):
    target = torch.rand(3, 2, 2)
    a = acts["L"].flatten(1)
    t = target.flatten()
    dot = a @ t
    cos = dot / (a.norm(dim=1) * t.norm())
    assert torch.allclose(obj.alignment("L", target, cossim_pow=2)(acts), dot * cos.clamp_min(0.1) ** 2)


def test_alignment_with_a_channel_vector_repeats_it_at_every_position(acts):
    v = torch.tensor([1.0, 0.0, 2.0])
    assert torch.allclose(obj.alignment("L", v, 0)(acts),
                          obj.alignment("L", v[:, None, None].expand(3, 2, 2), 0)(acts))
    per_element = obj.alignment("L", torch.stack([v, -v, v, v]), 0)
    assert per_element.batch_size == 4
    assert torch.allclose(per_element(acts)[1], obj.alignment("L", -v, 0)(acts)[1])
    assert torch.allclose(per_element(acts)[2:], obj.alignment("L", v, 0)(acts)[2:])


def test_alignment_resizes_a_spatial_target():
    target = torch.ones(3, 4, 4)
    acts = Acts({"L": torch.ones(1, 3, 2, 2)})
    assert torch.allclose(obj.alignment("L", target)(acts), torch.tensor([12.0]))


def test_stack_scores_each_part_of_the_batch_with_its_own_objective(acts):
    stacked = obj.stack([obj.channel("L", [0, 1]), obj.deepdream("L"), obj.class_logit(2)])
    assert stacked.batch_size == 4 and stacked.layers == {"L", "logits"}
    expected = torch.cat([obj.channel("L", [0, 1])(Acts({"L": acts["L"][:2]})),
                          obj.deepdream("L")(Acts({"L": acts["L"][2:3]})), torch.tensor([3.0])])
    assert torch.allclose(stacked(acts), expected)
    assert stacked.labels[:2] == ["L:0", "L:1"]


def test_stack_with_copies_keeps_views_together():
    a = torch.arange(8, dtype=torch.float32).view(4, 2, 1, 1)
    stacked = obj.stack([obj.channel("L", 0), obj.channel("L", 1)])
    values = evaluate(stacked, Acts({"L": a}, copies=2), copies=2)
    assert torch.allclose(values, torch.tensor([(0 + 2) / 2, (5 + 7) / 2]))
