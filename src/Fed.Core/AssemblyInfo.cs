namespace Fed.Core;
