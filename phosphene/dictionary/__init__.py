"""Learned dictionaries of feature directions: atoms of a layer, usable wherever a unit is.

    d, path = phosphene.dictionary.learn_dictionary(model, "_blocks.8", "images/", "runs/b8",
                                                    DictionarySettings(method="kmeans", atoms=16))
    d = phosphene.dictionary.load_dictionary(path)
    d.atoms                       # (16, 112) unit-norm directions
    d.encode(acts)                # the method's codes of (N, C) or (B, C, H, W) activations
    d.objective(3)                # objectives.direction of atom 3: render / accentuate it
    layer = phosphene.dictionary.attach(model, d)   # "_blocks.8.kmeans16": atoms as channels
    phosphene.mining.run_mining(model, [layer], "images/", "runs/atoms")

Modules: `sampling` (a bounded, streamed sample of activation vectors), `methods` (k-means, PCA,
NMF from scikit-learn; codes, reconstructions, metrics), `learn` (`learn_dictionary`), `atoms`
(`Dictionary` and its safetensors file), `attach` (the atom layer), `figure` (the atom sheet:
visualization and top exemplars per atom), `explain` (the atoms behind a unit's top activations).
docs/dictionary.md.
"""

from __future__ import annotations

from .atoms import Dictionary, load_dictionary
from .attach import attach, attached, attached_dictionaries, detach
from .explain import UnitAtoms, atom_share_vectors, unit_atoms_from_activations
from .figure import AtomSheet, atom_sheet, top_exemplars
from .learn import DictionarySettings, fit_dictionary, learn_dictionary
from .methods import METHODS
from .sampling import ActivationSample, sample_activations

__all__ = ["METHODS", "ActivationSample", "AtomSheet", "Dictionary", "DictionarySettings", "UnitAtoms",
           "atom_share_vectors", "atom_sheet", "attach", "attached", "attached_dictionaries", "detach",
           "fit_dictionary", "learn_dictionary", "load_dictionary", "sample_activations", "top_exemplars",
           "unit_atoms_from_activations"]
