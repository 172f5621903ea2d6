namespace Fed.Training;
