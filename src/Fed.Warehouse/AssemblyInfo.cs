namespace Fed.Warehouse;
