print("hbone")
