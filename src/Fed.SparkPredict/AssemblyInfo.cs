namespace Fed.SparkPredict;
