"""Soundness cases: the ai.onnx.ml operators that scikit-learn pipelines write (skl2onnx)."""

from onnx import TensorProto

from tests.ops.harness import OpCase, Operand

ML = "ai.onnx.ml"
F64, I64, I32 = TensorProto.DOUBLE, TensorProto.INT64, TensorProto.INT32
# onnxruntime's probit approximation takes a root of a small difference near p = 1/2: float32 results that
# round its constants in another order differ there by up to 4e-3 (the bounds allow for it)
PROBIT_RTOL = 1e-2
COEFFICIENTS = [0.5, -1.25, 2.0, 0.75, -0.3, 1.5, 1.0, 0.25, -2.0, 0.1, 0.6, -0.9]

# two trees over 3 features, two targets: tree 0 splits on x0 <= 0.5 then x2 < -1 (a leaf with two targets),
# tree 1 on x1 >= 0 (missing values go true) then x0 == 1 (exactly, a leaf reached by integers)
FOREST = {
    "nodes_treeids": [0, 0, 0, 0, 0, 1, 1, 1, 1, 1],
    "nodes_nodeids": [0, 1, 2, 3, 4, 0, 1, 2, 3, 4],
    "nodes_featureids": [0, 2, 0, 0, 0, 1, 0, 0, 0, 0],
    "nodes_modes": ["BRANCH_LEQ", "BRANCH_LT", "LEAF", "LEAF", "LEAF",
                    "BRANCH_GTE", "BRANCH_EQ", "LEAF", "LEAF", "LEAF"],
    "nodes_values": [0.5, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
    "nodes_truenodeids": [1, 3, 0, 0, 0, 1, 3, 0, 0, 0],
    "nodes_falsenodeids": [2, 4, 0, 0, 0, 2, 4, 0, 0, 0],
    "nodes_missing_value_tracks_true": [0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
    "target_treeids": [0, 0, 0, 0, 1, 1, 1],
    "target_nodeids": [2, 3, 3, 4, 2, 3, 4],
    "target_ids": [0, 0, 1, 1, 0, 1, 0],
    "target_weights": [1.5, -2.0, 0.25, 3.0, -0.5, 4.0, 0.75],
    "n_targets": 2,
}

NODES = {k: v for k, v in FOREST.items() if k.startswith("nodes_")}
# the same trees scoring three classes, and scikit-learn's binary form (one class's weights, all >= 0)
CLASSES = {**NODES, "class_treeids": [0, 0, 0, 0, 1, 1, 1], "class_nodeids": [2, 3, 3, 4, 2, 3, 4],
           "class_ids": [0, 0, 1, 2, 0, 1, 2], "class_weights": [1.5, -2.0, 0.25, 3.0, -0.5, 4.0, 0.75],
           "classlabels_int64s": [3, 5, 7]}
BINARY = {**NODES, "class_treeids": [0, 0, 0, 1, 1, 1], "class_nodeids": [2, 3, 4, 2, 3, 4],
          "class_ids": [0] * 6, "class_weights": [0.1, 0.3, 0.2, 0.4, 0.05, 0.25], "classlabels_int64s": [0, 1]}

CASES = [
    OpCase("Scaler", (Operand((4, 3), low=-5, high=5),), {"offset": [0.5, -1.0, 2.0], "scale": [2.0, 0.5, -3.0]},
           domain=ML),
    OpCase("Scaler", (Operand((4, 3), low=-5, high=5),), {"offset": [1.0], "scale": [1e30]}, domain=ML,
           name="Scaler-overflow"),
    OpCase("Scaler", (Operand((3,), F64, -5, 5),), {"offset": [0.5], "scale": [3.0]}, domain=ML, name="Scaler-double"),
    OpCase("Scaler", (Operand((4, 2), I64, -100, 100),), {"offset": [0.5, 2.0], "scale": [0.1, 3.0]}, domain=ML,
           name="Scaler-int64"),
    OpCase("Normalizer", (Operand((4, 3), low=-5, high=5),), {"norm": "L1"}, domain=ML, name="Normalizer-L1"),
    OpCase("Normalizer", (Operand((4, 3), low=0, high=5),), {"norm": "L2"}, domain=ML, name="Normalizer-L2"),
    OpCase("Normalizer", (Operand((4, 3), low=-3e19, high=3e19),), {"norm": "L2"}, domain=ML,
           name="Normalizer-L2-square-overflow"),
    OpCase("Normalizer", (Operand((3, 4), F64, -5, 5),), {"norm": "L2"}, domain=ML, name="Normalizer-L2-double"),
    OpCase("Normalizer", (Operand((3, 4), I32, -50000, 50000),), {"norm": "L2"}, domain=ML,
           name="Normalizer-L2-int32"),
    OpCase("Normalizer", (Operand((4, 3), low=0.5, high=5),), {"norm": "MAX"}, domain=ML, name="Normalizer-MAX"),
    OpCase("Normalizer", (Operand((4, 3), low=-5, high=-0.5),), {"norm": "MAX"}, domain=ML,
           name="Normalizer-MAX-negative"),
    OpCase("Normalizer", (Operand((4, 3), low=-5, high=5),), {"norm": "MAX"}, domain=ML, name="Normalizer-MAX-mixed"),
    OpCase("Normalizer", (Operand((5,), low=-5, high=5),), {"norm": "L1"}, domain=ML, name="Normalizer-vector"),
    OpCase("Binarizer", (Operand((4, 3), low=-2, high=2),), {"threshold": 0.5}, domain=ML),
    OpCase("Imputer", (Operand((4, 3), low=-2, high=2),),
           {"imputed_value_floats": [7.0, -8.0, 9.0], "replaced_value_float": 1.0}, domain=ML),
    OpCase("Imputer", (Operand((4, 3), I64, -3, 3),), {"imputed_value_int64s": [10], "replaced_value_int64": 0},
           domain=ML, name="Imputer-int64"),
    OpCase("ArrayFeatureExtractor", (Operand((3, 5), low=-2, high=2), Operand((2,), I64, value=[4, 1])), domain=ML),
    OpCase("ArrayFeatureExtractor", (Operand((5,), low=-2, high=2), Operand((1, 3), I64, value=[0, 0, 3])),
           domain=ML, name="ArrayFeatureExtractor-vector"),
    OpCase("ArrayFeatureExtractor", (Operand((3, 5), low=-2, high=2), Operand((2,), I64, low=1, high=3)), domain=ML,
           name="ArrayFeatureExtractor-range"),
    OpCase("OneHotEncoder", (Operand((3, 2), low=-2.5, high=3.5),), {"cats_int64s": [0, 1, 2, -1]}, domain=ML),
    OpCase("OneHotEncoder", (Operand((4,), I64, -1, 4),), {"cats_int64s": [3, 1, 0]}, domain=ML,
           name="OneHotEncoder-int64"),
    OpCase("OneHotEncoder", (Operand((2, 2), F64, 0, 3),), {"cats_int64s": [0, 1, 2]}, domain=ML,
           name="OneHotEncoder-double"),
    OpCase("TreeEnsembleRegressor", (Operand((5, 3), low=-3, high=3),), {**FOREST, "base_values": [0.5, -1.0]},
           domain=ML),
    OpCase("TreeEnsembleRegressor", (Operand((5, 3), low=0.6, high=3),), {**FOREST, "aggregate_function": "AVERAGE"},
           domain=ML, name="TreeEnsembleRegressor-average-narrow"),
    OpCase("TreeEnsembleRegressor", (Operand((4, 3), F64, -2, 2),), FOREST, domain=ML,
           name="TreeEnsembleRegressor-double"),
    *[OpCase("TreeEnsembleClassifier", (Operand((5, 3), low=-3, high=3),), {**CLASSES, "post_transform": transform},
             outputs=2, domain=ML, name=f"TreeEnsembleClassifier-{transform}")
      for transform in ("NONE", "SOFTMAX", "LOGISTIC")],
    OpCase("TreeEnsembleClassifier", (Operand((5, 3), low=-3, high=3),), {**CLASSES, "base_values": [0.5, -1.0, 2.0]},
           outputs=2, domain=ML, name="TreeEnsembleClassifier-base"),
    OpCase("TreeEnsembleClassifier", (Operand((5, 3), low=-3, high=3),), BINARY, outputs=2, domain=ML,
           name="TreeEnsembleClassifier-binary"),
    OpCase("LinearRegressor", (Operand((4, 3), low=-5, high=5),),
           {"coefficients": COEFFICIENTS[:6], "intercepts": [0.5, -1.0], "targets": 2}, domain=ML),
    OpCase("LinearRegressor", (Operand((4, 3), low=-5, high=5),), {"coefficients": COEFFICIENTS[:3]}, domain=ML,
           name="LinearRegressor-no-intercept"),
    OpCase("LinearRegressor", (Operand((4, 3), low=0, high=1),),
           {"coefficients": [0.3, 0.2, 0.1], "intercepts": [0.1], "post_transform": "PROBIT"}, domain=ML,
           name="LinearRegressor-probit", rtol=PROBIT_RTOL),
    *[OpCase("LinearClassifier", (Operand((4, 3), low=-5, high=5),),
             {"coefficients": COEFFICIENTS[:9], "intercepts": [0.5, -1.0, 0.0], "classlabels_ints": [3, 7, 9],
              "post_transform": transform}, outputs=2, domain=ML, name=f"LinearClassifier-{transform}")
      for transform in ("NONE", "LOGISTIC", "SOFTMAX")],
    OpCase("LinearClassifier", (Operand((4, 3), low=-1e-8, high=1e-8),),
           {"coefficients": COEFFICIENTS[:9], "intercepts": [0.0, 0.0, 0.0], "classlabels_ints": [0, 1, 2],
            "post_transform": "SOFTMAX_ZERO"}, outputs=2, domain=ML, name="LinearClassifier-SOFTMAX_ZERO"),
    OpCase("LinearClassifier", (Operand((4, 3), low=-5, high=5),),
           {"coefficients": COEFFICIENTS[:9], "intercepts": [0.5, -1.0, 0.0], "classlabels_ints": [0, 1, 2],
            "post_transform": "PROBIT"}, outputs=2, domain=ML, name="LinearClassifier-PROBIT", rtol=PROBIT_RTOL),
    *[OpCase("LinearClassifier", (Operand((4, 3), low=-5, high=5),),
             {"coefficients": COEFFICIENTS[:3], "intercepts": [0.25], "classlabels_ints": [0, 1],
              "post_transform": transform}, outputs=2, domain=ML, name=f"LinearClassifier-binary-{transform}")
      for transform in ("NONE", "LOGISTIC", "SOFTMAX")],
    OpCase("LinearClassifier", (Operand((4, 3), F64, -5, 5),),
           {"coefficients": COEFFICIENTS[:6], "intercepts": [0.5, -1.0], "classlabels_ints": [0, 1]},
           outputs=2, domain=ML, name="LinearClassifier-double"),
]
