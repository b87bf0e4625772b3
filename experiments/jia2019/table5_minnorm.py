"""Jia et al. 2019 (ComDefend), Table 5, DeepFool and C&W columns (see ``jia2019/table5.py``).

Both attacks are minimum-norm (L2): the runner scores them as robust accuracy at L2 bounds, an
attack that needs a larger perturbation than the bound counting as failed. The paper quotes them
"at L-inf 2/8/16"; the bounds here are the L2 radii of those L-inf balls on 32x32x3 images,
eps * sqrt(3072) = 0.43, 1.74, 3.48, so an image counted as broken here may need a larger L-inf
perturbation than the paper allowed (a stricter test of the defense).

    python -m robustjax.eval --config experiments/jia2019/table5_minnorm.py --n 1000
"""

from experiments.common import cifar10_jpeg, l2_radii_of_linf


def get_config():
    return cifar10_jpeg(name="jia2019_table5_minnorm", defenses=["none", "comdefend:sigma=0", "jpeg:75"],
                        attacks=["deepfool", "cw"], eps=[0.0] + l2_radii_of_linf((2, 8, 16)),
                        threats=["oblivious", "through"], out="results/jia2019")
