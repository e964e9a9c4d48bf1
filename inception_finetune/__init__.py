"""keyface: inception_finetune."""
