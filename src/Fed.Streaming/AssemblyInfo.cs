namespace Fed.Streaming;
