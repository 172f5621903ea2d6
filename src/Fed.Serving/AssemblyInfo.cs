namespace Fed.Serving;
