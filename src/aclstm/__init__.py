"""aclstm: ConvLSTM cells and the gesture network of "Attention in Convolutional LSTM for
Gesture Recognition" (Zhang, Zhu, Mei, Shen, Shah, Bennamoun; NIPS 2018)."""

__version__ = "0.1.0"
