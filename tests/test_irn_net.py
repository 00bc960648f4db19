import pytest
import torch
import torch.nn.functional as F

from IRN.net.resnet50_cam import CAMNet, load_cam_net
from IRN.net.resnet50_irn import IRNet, load_irnet
from wsgcn.infra.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def cam_net():
    torch.manual_seed(0)
    return CAMNet().eval()


@pytest.fixture(scope="module")
def irnet():
    torch.manual_seed(0)
    return IRNet().eval()


def test_cam_net_output_stride_16_and_cam_formula(cam_net):
    x = torch.randn(2, 3, 67, 93)
    with torch.no_grad():
        features = cam_net.features(x)
        assert features.shape == (2, 2048, 5, 6)  # ceil(67/16), ceil(93/16)
        # GAP and the 1x1 conv commute: the logits are the spatial mean of the un-rectified maps.
        logits = cam_net(x)
        torch.testing.assert_close(logits, F.conv2d(features, cam_net.classifier.weight).mean((2, 3)))


def test_cam_net_training_graph():
    torch.manual_seed(0)
    net = CAMNet(frozen_bn=True).train()
    assert all(not m.training for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert CAMNet(frozen_bn=False).train().resnet50.bn1.training
    F.multilabel_soft_margin_loss(net(torch.randn(2, 3, 64, 64)), torch.ones(2, 20)).backward()
    r = net.resnet50
    # conv1/bn1 frozen, stages 1-2 detached: no gradient there; stages 3-4 and the head learn.
    assert all(p.grad is None for p in [*r.conv1.parameters(), *r.layer1.parameters(), *r.layer2.parameters()])
    assert all(p.grad is not None for p in [*r.layer4.parameters(), net.classifier.weight])
    backbone, head = net.param_groups()
    assert head == [net.classifier.weight] and len(backbone) == len(list(r.layer3.parameters())) + len(
        list(r.layer4.parameters()))


def test_irnet_shapes_features_and_frozen_backbone(irnet):
    x = torch.randn(2, 3, 64, 80)
    edge, disp, features = irnet(x, with_features=True)
    assert edge.shape == (2, 1, 16, 20) and disp.shape == (2, 2, 16, 20) and features.shape == (2, 160, 16, 20)
    # The features weighted by the final conv sum to the boundary logit minus its bias.
    torch.testing.assert_close(features.sum(1, keepdim=True) + irnet.fc_edge6.bias.view(1, 1, 1, 1), edge,
                               rtol=1e-4, atol=1e-4)
    net = IRNet().train()
    assert not net.resnet50.training and net.fc_edge1.training
    edge, disp = net(x)
    (edge.sum() + disp.sum()).backward()
    assert all(p.grad is None for p in net.resnet50.parameters())
    assert net.fc_edge6.weight.grad is not None and net.fc_dp7[0].weight.grad is not None


def test_irnet_mean_shift_only_at_inference(irnet):
    net = IRNet()
    net.mean_shift.running_mean.copy_(torch.tensor([1.0, -2.0]))
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        train_disp = net.train()(x)[1]
        eval_disp = net.eval()(x)[1]
    torch.testing.assert_close(train_disp - eval_disp, torch.tensor([1.0, -2.0]).view(1, 2, 1, 1).expand_as(eval_disp))


def original_irn_state_dict(net):
    """The state dict IRNet's resnet50_irn.AffinityDisplacementLoss would save: every module
    under all its names, plus the training-only buffers."""
    own = net.state_dict()
    state = dict(own)
    stage_of = {"conv1": "stage1.0", "bn1": "stage1.1", "layer1": "stage2.0", "layer2": "stage3.0",
                "layer3": "stage4.0", "layer4": "stage5.0"}
    for key, value in own.items():
        if key.startswith("resnet50."):
            module, rest = key[len("resnet50."):].split(".", 1)
            stage = stage_of[module]
            state[f"{stage}.{rest}"] = value
            state[f"backbone.{int(stage[5]) - 1}.{stage.split('.')[1]}.{rest}"] = value
        for prefix, alias, n in (("fc_edge", "edge_layers", 6), ("fc_dp", "dp_layers", 7)):
            for i in range(1, n + 1):
                if key.startswith(f"{prefix}{i}."):
                    state[f"{alias}.{i - 1}." + key.split(".", 1)[1]] = value
    state["path_indices0"] = torch.zeros(3, 4, 5, dtype=torch.int64)
    state["disp_target"] = torch.zeros(1, 2, 34, 1)
    return state


def test_irnet_loads_original_checkpoint_layout(tmp_path, irnet):
    state = original_irn_state_dict(irnet)
    assert "backbone.0.0.weight" in state and "stage5.0.2.conv3.weight" in state and "edge_layers.5.bias" in state
    torch.save(state, tmp_path / "res50_irn.pth")
    loaded = load_irnet(tmp_path / "res50_irn.pth")
    for key, value in irnet.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    # Aliases alone (no canonical keys) are enough.
    only_aliases = {k: v for k, v in state.items() if not k.startswith(("resnet50.", "fc_"))}
    torch.save(only_aliases, tmp_path / "aliases.pth")
    torch.testing.assert_close(load_irnet(tmp_path / "aliases.pth").resnet50.layer3[2].conv2.weight,
                               irnet.resnet50.layer3[2].conv2.weight)


def test_cam_checkpoint_round_trip_and_original_names(tmp_path, cam_net):
    save_checkpoint(cam_net, tmp_path / "own.pth")
    torch.testing.assert_close(load_cam_net(tmp_path / "own.pth").classifier.weight, cam_net.classifier.weight)
    # IRNet's resnet50_cam.Net: stage1 = conv1, bn1, relu, maxpool, layer1; head also as newly_added.0.
    state = {"newly_added.0.weight": cam_net.classifier.weight}
    names = {"conv1": "stage1.0", "bn1": "stage1.1", "layer1": "stage1.4", "layer2": "stage2.0",
             "layer3": "stage3.0", "layer4": "stage4.0"}
    for key, value in cam_net.resnet50.state_dict().items():
        module, rest = key.split(".", 1)
        stage, index = names[module].split(".")
        state[f"backbone.{int(stage[5]) - 1}.{index}.{rest}"] = value
    torch.save(state, tmp_path / "original.pth")
    loaded = load_cam_net(tmp_path / "original.pth")
    torch.testing.assert_close(loaded.resnet50.layer1[0].conv1.weight, cam_net.resnet50.layer1[0].conv1.weight)
    torch.testing.assert_close(loaded.classifier.weight, cam_net.classifier.weight)


def test_wrong_architecture_is_refused(tmp_path, cam_net):
    save_checkpoint(cam_net, tmp_path / "res50_cam.pth")
    with pytest.raises(ValueError, match="res50_cam.pth.*does not fit IRNet"):
        load_irnet(tmp_path / "res50_cam.pth")
    with pytest.raises(FileNotFoundError, match="nothere.pth"):
        load_irnet(tmp_path / "nothere.pth")
