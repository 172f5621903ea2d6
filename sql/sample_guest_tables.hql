CREATE TABLE IF NOT EXISTS `fed_model_registry` (
  `version` INT,
  `party` STRING,
  `role` STRING COMMENT 'guest or host',
  `kind` STRING COMMENT 'logistic, linear or softmax',
  `classes` STRING COMMENT 'JSON array of class labels (softmax), else []',
  `parties` STRING COMMENT 'JSON array of all parties, guest first',
  `feature_count` INT,
  `output_count` INT,
  `missing_policy` STRING COMMENT 'reject or default',
  `checksum` STRING COMMENT 'sha256 of the partial-model file',
  `wide_table` STRING COMMENT 'the per-party wide table holding the weights',
  `status` STRING COMMENT 'active or inactive',
  `created_at` STRING COMMENT 'UTC, ISO 8601',
  `activated_at` STRING COMMENT 'UTC, ISO 8601'
)
COMMENT 'Fed model registry: which model versions exist per party and which one is active'
PARTITIONED BY (
  `model_id` STRING
)
STORED AS ORC;

CREATE TABLE IF NOT EXISTS `fed_model_columns` (
  `position` INT COMMENT '1-based: w_<position> in the wide table',
  `feature_name` STRING,
  `column_name` STRING COMMENT 'the feature\'s column in the party\'s feature tables',
  `missing_default` DOUBLE COMMENT 'raw default used when the value is absent (policy default), else NULL'
)
COMMENT 'Fed model column map: wide-table position to feature name'
PARTITIONED BY (
  `model_id` STRING,
  `version` STRING,
  `party` STRING
)
STORED AS ORC;

CREATE TABLE IF NOT EXISTS `fed_model_long` (
  `class_index` INT,
  `position` INT COMMENT '0 = the constant (intercept), 1..k = features',
  `feature` STRING COMMENT 'feature name, or (intercept) at position 0',
  `weight` DOUBLE COMMENT 'raw-feature-space weight'
)
COMMENT 'Fed model weights, long form'
PARTITIONED BY (
  `model_id` STRING,
  `version` STRING,
  `party` STRING
)
STORED AS ORC;

CREATE TABLE IF NOT EXISTS `fed_model_registry_staging` (
  `version` INT,
  `party` STRING,
  `role` STRING COMMENT 'guest or host',
  `kind` STRING COMMENT 'logistic, linear or softmax',
  `classes` STRING COMMENT 'JSON array of class labels (softmax), else []',
  `parties` STRING COMMENT 'JSON array of all parties, guest first',
  `feature_count` INT,
  `output_count` INT,
  `missing_policy` STRING COMMENT 'reject or default',
  `checksum` STRING COMMENT 'sha256 of the partial-model file',
  `wide_table` STRING COMMENT 'the per-party wide table holding the weights',
  `status` STRING COMMENT 'active or inactive',
  `created_at` STRING COMMENT 'UTC, ISO 8601',
  `activated_at` STRING COMMENT 'UTC, ISO 8601'
)
COMMENT 'Fed model registry staging: one model\'s partition being rewritten (export, activation)'
PARTITIONED BY (
  `model_id` STRING
)
STORED AS ORC;

CREATE TABLE IF NOT EXISTS `fed_partial_scores` (
  `sample_id` STRING,
  `class_index` INT,
  `partial_score` DOUBLE
)
COMMENT 'Fed partial scores: one party\'s intercept + sum w_i x_i per sample'
PARTITIONED BY (
  `model_id` STRING,
  `version` STRING,
  `party` STRING,
  `dt` STRING COMMENT 'day partition, yyyy-MM-dd'
)
STORED AS ORC;

CREATE TABLE IF NOT EXISTS `fed_partial_scores_hourly` (
  `sample_id` STRING,
  `class_index` INT,
  `partial_score` DOUBLE
)
COMMENT 'Fed partial scores: one party\'s intercept + sum w_i x_i per sample'
PARTITIONED BY (
  `model_id` STRING,
  `version` STRING,
  `party` STRING,
  `dt` STRING COMMENT 'day partition, yyyy-MM-dd',
  `hour` STRING COMMENT 'hour partition, HH'
)
STORED AS ORC;

CREATE TABLE IF NOT EXISTS `fed_predictions` (
  `sample_id` STRING,
  `predict_value` DOUBLE COMMENT 'P(class 1), the value, or the top class probability',
  `predicted_class` STRING COMMENT 'softmax: the class label',
  `probabilities` STRING COMMENT 'softmax: JSON array, one per class'
)
COMMENT 'Fed predictions combined from every party\'s partial score'
PARTITIONED BY (
  `model_id` STRING,
  `version` STRING,
  `dt` STRING COMMENT 'day partition, yyyy-MM-dd'
)
STORED AS ORC;

CREATE TABLE IF NOT EXISTS `fed_predictions_hourly` (
  `sample_id` STRING,
  `predict_value` DOUBLE COMMENT 'P(class 1), the value, or the top class probability',
  `predicted_class` STRING COMMENT 'softmax: the class label',
  `probabilities` STRING COMMENT 'softmax: JSON array, one per class'
)
COMMENT 'Fed predictions combined from every party\'s partial score'
PARTITIONED BY (
  `model_id` STRING,
  `version` STRING,
  `dt` STRING COMMENT 'day partition, yyyy-MM-dd',
  `hour` STRING COMMENT 'hour partition, HH'
)
STORED AS ORC;

CREATE TABLE IF NOT EXISTS `fed_model_wide_guest_k10` (
  `class_index` INT COMMENT '0 unless softmax',
  `intercept` DOUBLE COMMENT 'the party\'s constant term',
  `w_1` DOUBLE,
  `w_2` DOUBLE,
  `w_3` DOUBLE,
  `w_4` DOUBLE,
  `w_5` DOUBLE,
  `w_6` DOUBLE,
  `w_7` DOUBLE,
  `w_8` DOUBLE,
  `w_9` DOUBLE,
  `w_10` DOUBLE
)
COMMENT 'Fed model weights of party guest, wide form with 10 features'
PARTITIONED BY (
  `model_id` STRING,
  `version` STRING
)
STORED AS ORC;

CREATE TABLE IF NOT EXISTS `fed_features_guest` (
  `sample_id` STRING,
  `mean_radius` DOUBLE COMMENT 'mean_radius',
  `mean_texture` DOUBLE COMMENT 'mean_texture',
  `mean_perimeter` DOUBLE COMMENT 'mean_perimeter',
  `mean_area` DOUBLE COMMENT 'mean_area',
  `mean_smoothness` DOUBLE COMMENT 'mean_smoothness',
  `mean_compactness` DOUBLE COMMENT 'mean_compactness',
  `mean_concavity` DOUBLE COMMENT 'mean_concavity',
  `mean_concave_points` DOUBLE COMMENT 'mean_concave_points',
  `mean_symmetry` DOUBLE COMMENT 'mean_symmetry',
  `mean_fractal_dimension` DOUBLE COMMENT 'mean_fractal_dimension'
)
COMMENT 'Fed party features (NULL = missing)'
PARTITIONED BY (
  `dt` STRING COMMENT 'day partition, yyyy-MM-dd'
)
STORED AS ORC;

CREATE TABLE IF NOT EXISTS `fed_features_guest_hourly` (
  `sample_id` STRING,
  `mean_radius` DOUBLE COMMENT 'mean_radius',
  `mean_texture` DOUBLE COMMENT 'mean_texture',
  `mean_perimeter` DOUBLE COMMENT 'mean_perimeter',
  `mean_area` DOUBLE COMMENT 'mean_area',
  `mean_smoothness` DOUBLE COMMENT 'mean_smoothness',
  `mean_compactness` DOUBLE COMMENT 'mean_compactness',
  `mean_concavity` DOUBLE COMMENT 'mean_concavity',
  `mean_concave_points` DOUBLE COMMENT 'mean_concave_points',
  `mean_symmetry` DOUBLE COMMENT 'mean_symmetry',
  `mean_fractal_dimension` DOUBLE COMMENT 'mean_fractal_dimension'
)
COMMENT 'Fed party features (NULL = missing)'
PARTITIONED BY (
  `dt` STRING COMMENT 'day partition, yyyy-MM-dd',
  `hour` STRING COMMENT 'hour partition, HH'
)
STORED AS ORC;
