namespace Fed.Converter;
