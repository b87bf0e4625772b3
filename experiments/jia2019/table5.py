"""Jia et al. 2019 (ComDefend), Table 5, "in test time" rows: CIFAR-10 at L-inf 2/8/16 (/255).

Clean, FGSM and BIM against no defense, ComDefend (the authors' weights, sigma 0: the deterministic
binarisation; sigma=1.0 as the original test code makes the defense random) and JPEG q75, attacker
oblivious, differentiating through the defense (straight-through binarisation for ComDefend, the
cubic surrogate for JPEG) or BPDA (the defense's backward pass taken as the identity); the report's
worst case row counts an image robust only if every one of these cells missed it. The paper used
its own ResNet-50; the CIFAR-10 classifier with published weights is ``cifar_resnet56``. Caveat:
``$ROBUSTJAX_DATA/cifar10-test-jpeg`` is already JPEG q75, so the clean images carry JPEG artefacts
and JPEG q75 re-encodes them almost losslessly.

DeepFool and C&W are minimum-norm attacks, scored at L2 bounds: see ``jia2019/table5_minnorm.py``.
Das et al. 2017's JPEG qualities: ``--defense none,comdefend:sigma=0,jpeg:20,jpeg:40,jpeg:60,jpeg:80,jpeg:100``.

    python -m robustjax.eval --config experiments/jia2019/table5.py --n 1000
"""

from experiments.common import cifar10_jpeg


def get_config():
    return cifar10_jpeg(name="jia2019_table5", defenses=["none", "comdefend:sigma=0", "jpeg:75"],
                        attacks=["fgsm", "ifgsm"], eps=[0.0, 2 / 255, 8 / 255, 16 / 255],
                        threats=["oblivious", "through", "bpda"],
                        out="results/jia2019")
