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
